//! [`Var`]: a node of the reverse-mode differentiation tape.
//!
//! Every op on `Var`s returns a new `Var` holding the forward value, its parents and a backward
//! function `(grad_out, out_value, parents) -> grads for each parent`. Calling [`Var::backward`] on a
//! scalar walks the nodes reachable from it in reverse topological order and accumulates gradients into
//! the leaves that require them (the parameters). The tape is the graph of `Rc`s itself: dropping the
//! loss frees it. Inside [`no_grad`] nothing is recorded (decoding).

use crate::tensor::Tensor;
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;

/// Backward function of an op: given the gradient of the op's output, the output value and the parents,
/// return one gradient per parent (`None` where a parent needs none).
pub type BackwardFn = Box<dyn Fn(&Tensor, &Tensor, &[Var]) -> Vec<Option<Tensor>>>;

/// Backward function of a single-parent op whose gradient touches only part of the parent (a slice):
/// `(grad_out, parent's gradient accumulator)` adds `grad_out` into its region of the accumulator.
/// Taking `T` slices of one tensor then costs `T` slice-sized additions, not `T` zero-padded copies of
/// the whole parent added up.
pub type AccumulateFn = Box<dyn Fn(&Tensor, &mut Tensor)>;

/// How a node hands its gradient to its parents.
enum Backward {
    /// One gradient tensor per parent.
    Grads(BackwardFn),
    /// Added in place into the single parent's accumulated gradient.
    Into(AccumulateFn),
}

struct Node {
    value: RefCell<Tensor>,
    grad: RefCell<Option<Tensor>>,
    requires_grad: bool,
    parents: Vec<Var>,
    backward: Option<Backward>,
}

/// Frees the graph behind a node without recursion: a node owning the last handle to its parents
/// hands them to a work list instead of dropping them in place, so that a chain as deep as a long
/// recurrence (hundreds of thousands of nodes) cannot overflow the stack when the loss is dropped.
impl Drop for Node {
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.parents);
        while let Some(Var(rc)) = pending.pop() {
            if let Ok(mut node) = Rc::try_unwrap(rc) {
                pending.append(&mut node.parents);
                // `node` drops here with no parents left.
            }
        }
    }
}

/// A tensor value on the tape. Cloning a `Var` clones a handle, not the data.
#[derive(Clone)]
pub struct Var(Rc<Node>);

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops currently record backward functions.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording the tape (inference). Recording is restored afterwards even if `f`
/// panics (a caught panic must not leave the thread silently untaped).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}

impl Var {
    /// A constant: no gradient flows into it.
    pub fn constant(value: Tensor) -> Var {
        Var(Rc::new(Node {
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad: false,
            parents: Vec::new(),
            backward: None,
        }))
    }

    /// A trainable leaf (a parameter): gradients accumulate into it.
    pub fn parameter(value: Tensor) -> Var {
        Var(Rc::new(Node {
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad: true,
            parents: Vec::new(),
            backward: None,
        }))
    }

    /// Records an op's result. If grad is disabled or no parent requires a gradient, the result is a
    /// constant and the parents are not kept.
    pub fn from_op(value: Tensor, parents: Vec<Var>, backward: BackwardFn) -> Var {
        if !is_grad_enabled() || !parents.iter().any(|p| p.requires_grad()) {
            return Var::constant(value);
        }
        Var(Rc::new(Node {
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad: true,
            parents,
            backward: Some(Backward::Grads(backward)),
        }))
    }

    /// Records a single-parent op whose backward adds into a region of the parent's gradient (see
    /// [`AccumulateFn`]); like [`Var::from_op`] otherwise.
    pub fn from_op_into(value: Tensor, parent: &Var, backward: AccumulateFn) -> Var {
        if !is_grad_enabled() || !parent.requires_grad() {
            return Var::constant(value);
        }
        Var(Rc::new(Node {
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad: true,
            parents: vec![parent.clone()],
            backward: Some(Backward::Into(backward)),
        }))
    }

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Borrow of the value.
    pub fn value(&self) -> Ref<'_, Tensor> {
        self.0.value.borrow()
    }

    /// Mutable borrow of the value (optimizers and checkpoint loading update parameters in place).
    pub fn value_mut(&self) -> RefMut<'_, Tensor> {
        self.0.value.borrow_mut()
    }

    pub fn shape(&self) -> Vec<usize> {
        self.0.value.borrow().shape().to_vec()
    }

    /// Size of axis `axis`; negative counts from the end.
    pub fn dim(&self, axis: isize) -> usize {
        self.0.value.borrow().dim(axis)
    }

    /// A copy of the value.
    pub fn to_tensor(&self) -> Tensor {
        self.0.value.borrow().clone()
    }

    /// The value, moved out without a copy when this is the last handle to the node (a result
    /// computed without the tape), copied otherwise.
    pub fn into_tensor(self) -> Tensor {
        match Rc::try_unwrap(self.0) {
            Ok(mut node) => std::mem::replace(node.value.get_mut(), Tensor::zeros(&[0])),
            Err(rc) => rc.value.borrow().clone(),
        }
    }

    /// The single value of a one-element var.
    pub fn item(&self) -> f32 {
        self.0.value.borrow().item()
    }

    /// The accumulated gradient (leaves only keep theirs after `backward`).
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.borrow().clone()
    }

    /// Borrow of the accumulated gradient.
    pub fn grad_ref(&self) -> Ref<'_, Option<Tensor>> {
        self.0.grad.borrow()
    }

    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }

    /// Same node (pointer identity).
    pub fn same(&self, other: &Var) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// The same value, cut from the tape (no gradient flows back through it).
    pub fn detach(&self) -> Var {
        Var::constant(self.to_tensor())
    }

    fn key(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }

    /// Reverse-mode differentiation from this (scalar) var with seed gradient 1.
    pub fn backward(&self) {
        let seed = Tensor::ones(self.value().shape());
        self.backward_with(seed);
    }

    /// Reverse-mode differentiation with an explicit seed gradient of this var's shape.
    pub fn backward_with(&self, seed: Tensor) {
        assert_eq!(
            seed.shape(),
            self.value().shape(),
            "backward_with: seed shape"
        );
        if !self.requires_grad() {
            return;
        }
        // Iterative post-order DFS: long recurrences make deep graphs.
        let mut order: Vec<Var> = Vec::new();
        let mut visited: HashMap<usize, ()> = HashMap::new();
        let mut stack: Vec<(Var, bool)> = vec![(self.clone(), false)];
        while let Some((v, expanded)) = stack.pop() {
            if expanded {
                order.push(v);
                continue;
            }
            if visited.insert(v.key(), ()).is_some() {
                continue;
            }
            stack.push((v.clone(), true));
            for p in &v.0.parents {
                if p.requires_grad() && !visited.contains_key(&p.key()) {
                    stack.push((p.clone(), false));
                }
            }
        }
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        grads.insert(self.key(), seed);
        for v in order.iter().rev() {
            let Some(g) = grads.remove(&v.key()) else {
                continue;
            };
            match &v.0.backward {
                None => accumulate(&v.0.grad, g),
                Some(Backward::Grads(f)) => {
                    let pg = f(&g, &v.value(), &v.0.parents);
                    debug_assert_eq!(pg.len(), v.0.parents.len());
                    for (p, gp) in v.0.parents.iter().zip(pg) {
                        let Some(gp) = gp else { continue };
                        if !p.requires_grad() {
                            continue;
                        }
                        assert_eq!(
                            gp.shape(),
                            p.value().shape(),
                            "backward produced a gradient of the wrong shape"
                        );
                        match grads.get_mut(&p.key()) {
                            Some(acc) => acc.add_assign(&gp),
                            None => {
                                grads.insert(p.key(), gp);
                            }
                        }
                    }
                }
                Some(Backward::Into(f)) => {
                    let p = &v.0.parents[0];
                    let acc = grads
                        .entry(p.key())
                        .or_insert_with(|| Tensor::zeros(p.value().shape()));
                    f(&g, acc);
                }
            }
        }
    }
}

fn accumulate(slot: &RefCell<Option<Tensor>>, g: Tensor) {
    let mut slot = slot.borrow_mut();
    match slot.as_mut() {
        Some(acc) => acc.add_assign(&g),
        None => *slot = Some(g),
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var{:?}", self.value().shape())
    }
}
