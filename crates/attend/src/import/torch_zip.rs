//! State dicts from the files PyTorch users save: `torch.save` checkpoints (`.pt`, `.pth`, any
//! name), `.safetensors` and numpy `.npz`.
//!
//! A `torch.save` file (the zip format, PyTorch ≥ 1.6) is a zip archive:
//!
//! ```text
//! <name>/data.pkl          the saved object, pickled (protocol 2); tensors appear as
//!                          torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)
//!                          with storage = persistent id ('storage', torch.FloatStorage, key, device, numel)
//! <name>/data/<key>        each storage's raw little-endian bytes
//! ```
//!
//! The pickle is read by [`pickle`] without running anything. The saved object is
//! a state dict (`{name: tensor}`, an `OrderedDict`) or a dict holding one, such as
//! `{"epoch": 3, "model_state_dict": …}`: `key` names it (`"model_state_dict"`; nested dicts as
//! `"a/b"`), and without a key a dict that is not all tensors is refused with a message listing its
//! entries. Tensors may be strided views (gathered here); float32, float64, int64, int32, uint8
//! and bool storages are read, as f32.

use super::pickle::{self, Id, Pickle, Value};
use super::ImportError;
use crate::nn::npz::load_npz;
use crate::nn::params::load_tensors;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use tensor::Tensor;

/// Reads the state dict in `path`: `.safetensors` and `.npz` by their extension (`key` must then
/// be `None`), anything else as a `torch.save` zip file.
pub fn read_state_dict(
    path: &Path,
    key: Option<&str>,
) -> Result<BTreeMap<String, Tensor>, ImportError> {
    let ext = path.extension().and_then(|e| e.to_str());
    if matches!(ext, Some("safetensors") | Some("npz")) {
        if let Some(key) = key {
            return Err(format_error(
                path,
                format!(
                    "key = {key:?} is for torch.save files; a .{} file holds one flat state dict",
                    ext.unwrap_or_default()
                ),
            ));
        }
        return Ok(if ext == Some("npz") {
            load_npz(path)?
        } else {
            load_tensors(path)?
        });
    }
    read_torch(path, key)
}

fn format_error(path: &Path, reason: String) -> ImportError {
    ImportError::Format {
        path: path.display().to_string(),
        reason,
    }
}

/// Reads a `torch.save` zip file (see the module doc).
pub fn read_torch(path: &Path, key: Option<&str>) -> Result<BTreeMap<String, Tensor>, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_torch(&bytes, path, key)
}

/// [`read_torch`] over the file's bytes; `path` names it in errors.
pub fn parse_torch(
    bytes: &[u8],
    path: &Path,
    key: Option<&str>,
) -> Result<BTreeMap<String, Tensor>, ImportError> {
    let fail = |reason: String| format_error(path, reason);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        fail(if bytes.starts_with(b"\x80\x02\x8a\x0a") {
            "saved in torch's legacy format; load and save it again with torch.save(obj, path) (PyTorch ≥ 1.6 writes the zip format)".into()
        } else {
            format!("not a torch.save zip archive ({e}); .safetensors or .npz files are read by their extension")
        })
    })?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("reading the archive's names: {e}")))?;
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())
        .ok_or_else(|| fail("the archive has no data.pkl: not a torch.save file".into()))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let limit = bytes.len() as u64;
    let mut entry = |name: &str| -> Result<Vec<u8>, ImportError> {
        let file = zip
            .by_name(name)
            .map_err(|e| fail(format!("archive entry {name}: {e}")))?;
        let mut out = Vec::new();
        file.take(limit)
            .read_to_end(&mut out)
            .map_err(|e| fail(format!("archive entry {name}: {e}")))?;
        Ok(out)
    };
    let p = pickle::parse(&entry(pkl)?).map_err(|e| fail(format!("{pkl}: {e}")))?;
    let dict = select(&p, key).map_err(fail)?;
    let mut storages: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (name, value) in dict {
        let t = tensor_ref(&p, value, 0).map_err(|reason| fail(format!("`{name}`: {reason}")))?;
        if !storages.contains_key(&t.storage) {
            let data = entry(&format!("{prefix}data/{}", t.storage))?;
            storages.insert(t.storage.clone(), data);
        }
        let tensor = t
            .gather(&storages[&t.storage])
            .map_err(|reason| fail(format!("`{name}`: {reason}")))?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// The entries of the state dict `key` selects: (name, tensor object).
fn select(p: &Pickle, key: Option<&str>) -> Result<Vec<(String, Id)>, String> {
    let mut id = p.root();
    let mut at = String::from("the saved object");
    for part in key.into_iter().flat_map(|k| k.split('/')) {
        let entries = dict_entries(p, id)
            .ok_or_else(|| format!("{at} is not a dict; key cannot select {part:?} in it"))?;
        id = entries
            .iter()
            .rev()
            .find(|(k, _)| k == part)
            .map(|&(_, v)| v)
            .ok_or_else(|| {
                format!(
                    "{at} has no entry {part:?}; it has {}",
                    describe(p, &entries)
                )
            })?;
        at = format!("entry {part:?}");
    }
    let entries = dict_entries(p, id).ok_or_else(|| format!("{at} is not a dict of tensors"))?;
    if entries.iter().any(|&(_, v)| !is_tensor(p, v)) {
        return Err(format!(
            "{at} is not a state dict (not every entry is a tensor): {}; name the state dict with key = \"…\" in the mapping file",
            describe(p, &entries)
        ));
    }
    Ok(entries)
}

/// `(key, value)` of a dict whose keys are strings.
fn dict_entries(p: &Pickle, id: Id) -> Option<Vec<(String, Id)>> {
    match p.get(id) {
        Value::Dict(items) => items
            .iter()
            .map(|&(k, v)| p.str(k).map(|k| (k.to_string(), v)))
            .collect(),
        _ => None,
    }
}

/// The entries of a dict for a message: `epoch`, `model_state_dict` (a dict of 12 tensors), ….
fn describe(p: &Pickle, entries: &[(String, Id)]) -> String {
    let list: Vec<String> = entries
        .iter()
        .take(12)
        .map(|(k, v)| match dict_entries(p, *v) {
            Some(e) if !e.is_empty() && e.iter().all(|&(_, t)| is_tensor(p, t)) => {
                format!("`{k}` (a state dict of {} tensors)", e.len())
            }
            Some(_) => format!("`{k}` (a dict)"),
            None if is_tensor(p, *v) => format!("`{k}` (a tensor)"),
            None => format!("`{k}`"),
        })
        .collect();
    let more = entries.len().saturating_sub(12);
    if more > 0 {
        format!("{} and {more} more", list.join(", "))
    } else {
        list.join(", ")
    }
}

fn is_tensor(p: &Pickle, id: Id) -> bool {
    rebuild(p, id).is_some()
}

/// The rebuild function and its arguments of a tensor object.
fn rebuild(p: &Pickle, id: Id) -> Option<(&str, &[Id])> {
    let Value::Call { callable, args } = p.get(id) else {
        return None;
    };
    let Value::Global { module, name } = p.get(*callable) else {
        return None;
    };
    let known =
        module == "torch._utils" && (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter");
    known.then(|| p.items(*args).map(|a| (name.as_str(), a)))?
}

/// Where a tensor's values are: its storage and its view of it.
struct TensorRef {
    storage: String,
    dtype: Dtype,
    /// Elements in the storage.
    numel: usize,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

#[derive(Clone, Copy)]
enum Dtype {
    F32,
    F64,
    I64,
    I32,
    U8,
    Bool,
}

impl Dtype {
    fn from_storage(name: &str) -> Option<Dtype> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::U8 | Dtype::Bool => 1,
        }
    }

    fn read(self, b: &[u8]) -> f32 {
        let a = |n: usize| -> [u8; 8] {
            let mut x = [0u8; 8];
            x[..n].copy_from_slice(&b[..n]);
            x
        };
        match self {
            Dtype::F32 => f32::from_le_bytes(a(4)[..4].try_into().expect("4 bytes")),
            Dtype::F64 => f64::from_le_bytes(a(8)) as f32,
            Dtype::I64 => i64::from_le_bytes(a(8)) as f32,
            Dtype::I32 => i32::from_le_bytes(a(4)[..4].try_into().expect("4 bytes")) as f32,
            Dtype::U8 | Dtype::Bool => f32::from(b[0]),
        }
    }
}

/// Reads `_rebuild_tensor_v2(storage, offset, size, stride, …)` (or `_rebuild_parameter(tensor, …)`).
fn tensor_ref(p: &Pickle, id: Id, depth: usize) -> Result<TensorRef, String> {
    let (name, args) = rebuild(p, id).ok_or("not a tensor")?;
    if name == "_rebuild_parameter" {
        let inner = *args.first().ok_or("_rebuild_parameter without a tensor")?;
        if depth > 0 {
            return Err("a parameter inside a parameter".into());
        }
        return tensor_ref(p, inner, depth + 1);
    }
    let [storage, offset, size, stride, ..] = args else {
        return Err("_rebuild_tensor_v2 with fewer than 4 arguments".into());
    };
    let Value::Persistent(pid) = p.get(*storage) else {
        return Err("the storage is not a persistent id".into());
    };
    let pid = p.items(*pid).ok_or("the storage id is not a tuple")?;
    let [tag, class, key, _device, numel, ..] = pid else {
        return Err("the storage id has fewer than 5 fields".into());
    };
    if p.str(*tag) != Some("storage") {
        return Err("the persistent id is not a storage".into());
    }
    let Value::Global { name: class, .. } = p.get(*class) else {
        return Err("the storage type is not a class".into());
    };
    let dtype = Dtype::from_storage(class).ok_or_else(|| {
        format!("storage type {class} is not read (float32, float64, int64, int32, uint8, bool are); convert with .float() before saving")
    })?;
    let key = match p.get(*key) {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err("the storage key is not a string".into()),
    };
    if key.is_empty() || key.contains(['/', '\\']) || key.contains("..") {
        return Err(format!("storage key {key:?} is not a plain name"));
    }
    let count = |id: Id, what: &str| -> Result<usize, String> {
        p.int(id)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| format!("{what} is not a non-negative integer"))
    };
    let list = |id: Id, what: &str| -> Result<Vec<usize>, String> {
        p.items(id)
            .ok_or_else(|| format!("{what} is not a tuple"))?
            .iter()
            .map(|&i| count(i, what))
            .collect()
    };
    let t = TensorRef {
        storage: key,
        dtype,
        numel: count(*numel, "the storage size")?,
        offset: count(*offset, "the storage offset")?,
        size: list(*size, "the size")?,
        stride: list(*stride, "the stride")?,
    };
    if t.size.len() != t.stride.len() {
        return Err(format!(
            "size {:?} and stride {:?} differ in rank",
            t.size, t.stride
        ));
    }
    Ok(t)
}

impl TensorRef {
    /// The tensor's values from its storage's bytes, in row-major order.
    fn gather(&self, bytes: &[u8]) -> Result<Tensor, String> {
        let w = self.dtype.size();
        if bytes.len() < self.numel.saturating_mul(w) {
            return Err(format!(
                "storage {} holds {} bytes, {} elements of {w} bytes were saved (truncated file)",
                self.storage,
                bytes.len(),
                self.numel
            ));
        }
        let n = self
            .size
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("the size overflows")?;
        if n > 0 {
            let last = self
                .size
                .iter()
                .zip(&self.stride)
                .try_fold(self.offset, |a, (&d, &s)| {
                    (d - 1).checked_mul(s).and_then(|x| x.checked_add(a))
                });
            if last.is_none_or(|l| l >= self.numel) {
                return Err(format!(
                    "the view (offset {}, size {:?}, stride {:?}) reaches beyond its storage of {} elements",
                    self.offset, self.size, self.stride, self.numel
                ));
            }
        }
        let mut data = Vec::with_capacity(n);
        let mut index = vec![0usize; self.size.len()];
        for _ in 0..n {
            let at = self.offset
                + index
                    .iter()
                    .zip(&self.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            data.push(self.dtype.read(&bytes[at * w..(at + 1) * w]));
            for (i, &d) in index.iter_mut().zip(&self.size).rev() {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
        Ok(Tensor::from_vec(data, &self.size))
    }
}
