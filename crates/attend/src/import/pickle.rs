//! The subset of Python's pickle format that `torch.save` writes (protocols 2–5), read into plain
//! values with no Python and no code run.
//!
//! A pickle is a program for a stack machine. This reader runs the opcodes that describe data —
//! `None`, booleans, integers, floats, strings, bytes, tuples, lists, dicts, the memo — and keeps
//! the three that would run code as inert records for the caller to interpret: a global reference
//! (`GLOBAL`, `STACK_GLOBAL`) becomes [`Value::Global`], a call (`REDUCE`, `NEWOBJ`) becomes
//! [`Value::Call`] (an `collections.OrderedDict()` call becomes an empty dict, since state dicts
//! are ordered dicts filled by `SETITEMS`), and a persistent id (`BINPERSID`, how torch refers to
//! a tensor's storage) becomes [`Value::Persistent`]. `BUILD` (setting an object's attributes,
//! such as an ordered dict's `_metadata`) keeps the object and drops the attributes.
//!
//! Objects live in an arena and the stack and memo hold indices, so a memoized dict filled later
//! is seen filled wherever it is fetched. Every read is bounds-checked, every length is checked
//! against the bytes left before anything is allocated, and an unknown opcode, a stack underflow
//! or a missing mark is a [`PickleError`] naming the byte offset: corrupt input never panics.
//!
//! (No maintained Rust crate reads persistent ids without also pulling in a deep-learning
//! framework; the subset is small enough to keep here.)

use std::collections::HashMap;

/// Index of an object in a [`Pickle`]'s arena.
pub type Id = usize;

/// One unpickled object. Containers hold the [`Id`]s of their items.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Items in insertion order (duplicate keys: the later value wins on lookup).
    Dict(Vec<(Id, Id)>),
    /// `module.name`, unresolved.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)`, not run.
    Call {
        callable: Id,
        args: Id,
    },
    /// A persistent id (for torch: `('storage', StorageClass, key, location, numel)`).
    Persistent(Id),
}

/// Why a pickle could not be read; `offset` is the byte of the opcode at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pickle byte {offset}: {reason}")]
pub struct PickleError {
    pub offset: usize,
    pub reason: String,
}

/// An unpickled object graph: the arena and the root.
#[derive(Debug)]
pub struct Pickle {
    objects: Vec<Value>,
    root: Id,
}

impl Pickle {
    /// The object the pickle returns.
    pub fn root(&self) -> Id {
        self.root
    }

    /// The object at `id` (every id a [`Value`] of this pickle holds is valid).
    pub fn get(&self, id: Id) -> &Value {
        &self.objects[id]
    }

    /// The text of a `Str` object.
    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of an `Int` object.
    pub fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items of a `Tuple` or `List`.
    pub fn items(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }
}

/// Reads the pickle in `bytes` (up to its `STOP`).
pub fn parse(bytes: &[u8]) -> Result<Pickle, PickleError> {
    let mut m = Machine {
        bytes,
        pos: 0,
        op_at: 0,
        objects: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    Ok(Pickle {
        objects: m.objects,
        root,
    })
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    op_at: usize,
    objects: Vec<Value>,
    stack: Vec<Id>,
    /// Stack heights at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl Machine<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_at,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return self.fail(format!("needs {n} bytes, {left} left (truncated)"));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A length field of `N` bytes, little-endian.
    fn len<const N: usize>(&mut self) -> Result<usize, PickleError> {
        let a = self.array::<N>()?;
        let mut b = [0u8; 8];
        b[..N].copy_from_slice(&a);
        usize::try_from(u64::from_le_bytes(b)).or_else(|_| self.fail("length too large"))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.fail("unterminated line");
        };
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn alloc(&mut self, v: Value) -> Id {
        self.objects.push(v);
        self.objects.len() - 1
    }

    fn push(&mut self, v: Value) {
        let id = self.alloc(v);
        self.stack.push(id);
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.fail("stack underflow");
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        match self.stack.last() {
            Some(&id) => Ok(id),
            None => self.fail("empty stack"),
        }
    }

    /// The items pushed since the last `MARK` (the mark removed).
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(at) = self.marks.pop() else {
            return self.fail("no MARK before this opcode");
        };
        Ok(self.stack.split_off(at))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(id);
                Ok(())
            }
            None => self.fail(format!("memo entry {key} was never stored")),
        }
    }

    fn tuple(&mut self, n: usize) -> Result<(), PickleError> {
        let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
        items.reverse();
        self.push(Value::Tuple(items));
        Ok(())
    }

    /// Adds `pairs` (key, value, key, value …) to the dict at `target`.
    fn set_items(&mut self, target: Id, flat: Vec<Id>) -> Result<(), PickleError> {
        if !flat.len().is_multiple_of(2) {
            return self.fail("SETITEMS with an odd number of items");
        }
        let pairs = flat.chunks(2).map(|p| (p[0], p[1]));
        match &mut self.objects[target] {
            Value::Dict(items) => {
                items.extend(pairs);
                Ok(())
            }
            _ => self.fail("SETITEM(S) on something that is not a dict"),
        }
    }

    fn append(&mut self, target: Id, items: Vec<Id>) -> Result<(), PickleError> {
        match &mut self.objects[target] {
            Value::List(list) => {
                list.extend(items);
                Ok(())
            }
            _ => self.fail("APPEND(S) on something that is not a list"),
        }
    }

    /// `callable(*args)`: an empty dict for `collections.OrderedDict()`, a [`Value::Call`] else.
    fn call(&mut self, callable: Id, args: Id) {
        let ordered_dict = matches!(&self.objects[callable],
            Value::Global { module, name } if module == "collections" && name == "OrderedDict");
        let no_args = matches!(&self.objects[args], Value::Tuple(a) if a.is_empty());
        if ordered_dict && no_args {
            self.push(Value::Dict(Vec::new()));
        } else {
            self.push(Value::Call { callable, args });
        }
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            self.op_at = self.pos;
            let [op] = self.array::<1>()?;
            match op {
                0x80 => {
                    self.take(1)?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let [v] = self.array()?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = self.len::<1>()?;
                    if n > 8 {
                        return self.fail(format!("LONG1 of {n} bytes (at most 8 are read)"));
                    }
                    let b = self.take(n)?;
                    let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut full = [fill; 8];
                    full[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(full)));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Value::Float(v));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.len::<4>()?,
                        0x8c => self.len::<1>()?,
                        _ => self.len::<8>()?,
                    };
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s));
                }
                b'T' | b'U' => {
                    // BINSTRING / SHORT_BINSTRING: Python 2 strings, read as Latin-1.
                    let n = if op == b'T' {
                        self.len::<4>()?
                    } else {
                        self.len::<1>()?
                    };
                    let s = self.take(n)?.iter().map(|&b| b as char).collect();
                    self.push(Value::Str(s));
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.len::<4>()?,
                        b'C' => self.len::<1>()?,
                        _ => self.len::<8>()?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b'}' => self.push(Value::Dict(Vec::new())),
                0x85..=0x87 => self.tuple(usize::from(op - 0x84))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let id = self.alloc(Value::Dict(Vec::new()));
                    self.set_items(id, items)?;
                    self.stack.push(id);
                }
                b'q' => {
                    let k = self.len::<1>()?;
                    self.memo_put(k as u64)?;
                }
                b'r' => {
                    let k = self.len::<4>()?;
                    self.memo_put(k as u64)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.len::<1>()?;
                    self.memo_get(k as u64)?;
                }
                b'j' => {
                    let k = self.len::<4>()?;
                    self.memo_get(k as u64)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global { module, name });
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name))
                    else {
                        return self.fail("STACK_GLOBAL needs two strings");
                    };
                    self.push(Value::Global { module, name });
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Value::Persistent(pid));
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.call(callable, args);
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let target = self.top()?;
                    self.set_items(target, vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.set_items(target, items)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    let target = self.top()?;
                    self.append(target, vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.append(target, items)?;
                }
                b'b' => {
                    self.pop()?; // BUILD: the attributes are not needed
                    self.top()?;
                }
                other => {
                    return self.fail(format!(
                        "opcode 0x{other:02x} is not one torch.save writes for a state dict"
                    ))
                }
            }
        }
    }

    fn str_of(&self, id: Id) -> Option<String> {
        match &self.objects[id] {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
}
