//! Gathering rows of a table by index: the embedding lookup.
//!
//! `out[i, :] = table[ids[i], :]`, `table [V, D]`, `ids [N]` → `[N, D]`. Backward scatter-adds the
//! gradient rows into a `[V, D]` gradient (rows of repeated ids add up).

use crate::kernels::fill;
use crate::tensor::Tensor;
use crate::var::Var;

impl Var {
    /// Rows of `self` (`[V, D]`) at `ids`, shaped `[ids.len(), D]`. Panics on an id ≥ V.
    pub fn gather_rows(&self, ids: &[u32]) -> Var {
        let (v, d) = {
            let t = self.value();
            assert_eq!(
                t.rank(),
                2,
                "gather_rows: table must be [V, D], got {:?}",
                t.shape()
            );
            (t.shape()[0], t.shape()[1])
        };
        let mut out = Vec::with_capacity(ids.len() * d);
        {
            let t = self.value();
            for &id in ids {
                let id = id as usize;
                assert!(id < v, "gather_rows: id {id} out of range for {v} rows");
                out.extend_from_slice(&t.data()[id * d..(id + 1) * d]);
            }
        }
        let ids = ids.to_vec();
        Var::from_op(
            Tensor::from_vec(out, &[ids.len(), d]),
            vec![self.clone()],
            Box::new(move |g, _, _| {
                let mut gt = fill::zeroed(v * d);
                for (row, &id) in g.data().chunks_exact(d).zip(&ids) {
                    let dst = &mut gt[id as usize * d..(id as usize + 1) * d];
                    for (a, &b) in dst.iter_mut().zip(row) {
                        *a += b;
                    }
                }
                vec![Some(Tensor::from_vec(gt, &[v, d]))]
            }),
        )
    }
}
