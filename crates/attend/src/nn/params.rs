//! [`Params`]: a model's named parameters (`encoder.rnn.weight_ih_l0`, …), saved to and loaded from
//! safetensors.
//!
//! Names follow PyTorch's `state_dict` conventions so that weights move between attend and PyTorch
//! unchanged. Saving is atomic: the file is written to `NAME.tmp`, fsynced, then renamed over `NAME`,
//! so an interrupted save never leaves a truncated checkpoint.
//!
//! Every file attend writes carries the [`checksum`](super::checksum) of its tensors in the
//! safetensors metadata, and loading verifies it: a damaged file is refused, never served. Files
//! written elsewhere (PyTorch, Hugging Face) have no checksum and still load. Whatever the origin,
//! a tensor holding NaN or ±∞ is refused at load, since it can only give wrong output.

use super::checksum::{checksum, TensorBytes, KEY};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use tensor::{Rng, Tensor, Var};

/// Errors from saving or loading parameters.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file ({reason}); the checkpoint is corrupt or truncated — use another checkpoint (e.g. `last` instead of `best`) or retrain")]
    Corrupt { path: String, reason: String },
    #[error("{path}: missing parameter `{name}` (the checkpoint was written by a different model configuration)")]
    Missing { path: String, name: String },
    #[error("{path}: parameter `{name}` has shape {found:?}, the model expects {expected:?} (the config does not match the checkpoint)")]
    Shape {
        path: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: parameter `{name}` has dtype {dtype}, only F32 is supported")]
    Dtype {
        path: String,
        name: String,
        dtype: String,
    },
    #[error("{path}: checksum mismatch: the file is corrupt (stored {stored}, computed {computed}) — use another checkpoint (e.g. `last` instead of `best`) or retrain")]
    Checksum {
        path: String,
        stored: String,
        computed: String,
    },
    #[error("{path}: parameter `{name}` holds a non-finite value (NaN or ±inf) at index {index}; the weights are unusable — use another checkpoint or retrain")]
    NonFinite {
        path: String,
        name: String,
        index: usize,
    },
}

/// An ordered collection of named trainable parameters.
#[derive(Default)]
pub struct Params {
    entries: Vec<(String, Var)>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Registers a parameter with an initial value; panics on a duplicate name (a model-building bug).
    pub fn add(&mut self, name: &str, value: Tensor) -> Var {
        assert!(
            self.get(name).is_none(),
            "parameter `{name}` registered twice"
        );
        let v = Var::parameter(value);
        self.entries.push((name.to_string(), v.clone()));
        v
    }

    /// `U(−bound, bound)` initialisation (PyTorch's default for Linear and RNN weights).
    pub fn uniform(&mut self, name: &str, shape: &[usize], bound: f32, rng: &mut Rng) -> Var {
        self.add(name, Tensor::uniform(shape, -bound, bound, rng))
    }

    /// `N(0, std²)` initialisation.
    pub fn normal(&mut self, name: &str, shape: &[usize], std: f32, rng: &mut Rng) -> Var {
        self.add(name, Tensor::randn(shape, 0.0, std, rng))
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// `(name, parameter)` in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn vars(&self) -> Vec<Var> {
        self.entries.iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn count(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.value().numel()).sum()
    }

    pub fn zero_grad(&self) {
        for (_, v) in &self.entries {
            v.zero_grad();
        }
    }

    /// Values as `name → tensor` (copies).
    pub fn to_map(&self) -> BTreeMap<String, Tensor> {
        self.entries
            .iter()
            .map(|(n, v)| (n.clone(), v.to_tensor()))
            .collect()
    }

    /// Writes every parameter to a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<(), ParamsError> {
        save_tensors(&self.to_map(), path)
    }

    /// Loads every parameter of this store from a safetensors file (extra tensors in the file are
    /// ignored); shapes must match.
    pub fn load(&self, path: &Path) -> Result<(), ParamsError> {
        self.assign(&load_tensors(path)?, path)
    }

    /// Sets every parameter of this store from `map` (extra tensors are ignored), or none of them
    /// when one is missing or has another shape; `path` names the source in errors.
    pub fn assign(&self, map: &BTreeMap<String, Tensor>, path: &Path) -> Result<(), ParamsError> {
        let p = path.display().to_string();
        for (name, var) in &self.entries {
            let t = map.get(name).ok_or_else(|| ParamsError::Missing {
                path: p.clone(),
                name: name.clone(),
            })?;
            let expected = var.shape();
            if t.shape() != expected.as_slice() {
                return Err(ParamsError::Shape {
                    path: p.clone(),
                    name: name.clone(),
                    expected,
                    found: t.shape().to_vec(),
                });
            }
        }
        for (name, var) in &self.entries {
            *var.value_mut() = map[name].clone();
        }
        Ok(())
    }
}

/// Writes named f32 tensors to `path` as safetensors: temp file, fsync, rename.
pub fn save_tensors(tensors: &BTreeMap<String, Tensor>, path: &Path) -> Result<(), ParamsError> {
    let io = |source| ParamsError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.data().iter().flat_map(|x| x.to_le_bytes()).collect(),
                t.shape().to_vec(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("sizes agree by construction"),
            )
        })
        .collect();
    let metadata = HashMap::from([(KEY.to_string(), views_checksum(&views))]);
    let data = safetensors::serialize(views, Some(metadata)).map_err(|e| ParamsError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    atomic_write(path, &data).map_err(io)
}

/// The [`checksum`] of safetensors views.
fn views_checksum(views: &[(String, TensorView)]) -> String {
    let dtypes: Vec<String> = views
        .iter()
        .map(|(_, v)| format!("{:?}", v.dtype()))
        .collect();
    let mut hashed: Vec<TensorBytes> = views
        .iter()
        .zip(&dtypes)
        .map(|((name, v), dtype)| TensorBytes {
            name,
            dtype,
            shape: v.shape(),
            data: v.data(),
        })
        .collect();
    checksum(&mut hashed)
}

/// Writes `data` to `path` atomically (temp file in the same directory, fsync, rename, fsync dir).
pub fn atomic_write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads every tensor of a safetensors file (F32 only): verifies the checksum where the file has
/// one and refuses non-finite values.
pub fn load_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>, ParamsError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ParamsError::Io {
        path: p.clone(),
        source,
    })?;
    parse_tensors(&bytes, path)
}

/// Reads every tensor of safetensors bytes already in memory (F32 only), as [`load_tensors`] does;
/// `path` names them in errors.
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Tensor>, ParamsError> {
    let p = path.display().to_string();
    let corrupt = |e: safetensors::SafeTensorError| ParamsError::Corrupt {
        path: p.clone(),
        reason: e.to_string(),
    };
    let st = SafeTensors::deserialize(bytes).map_err(corrupt)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(corrupt)?;
    let views = st.tensors();
    if let Some(stored) = header.metadata().as_ref().and_then(|m| m.get(KEY)) {
        let computed = views_checksum(&views);
        if &computed != stored {
            return Err(ParamsError::Checksum {
                path: p,
                stored: stored.clone(),
                computed,
            });
        }
    }
    let mut out = BTreeMap::new();
    for (name, view) in views {
        if view.dtype() != Dtype::F32 {
            return Err(ParamsError::Dtype {
                path: p.clone(),
                name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(index) = data.iter().position(|x| !x.is_finite()) {
            return Err(ParamsError::NonFinite {
                path: p,
                name,
                index,
            });
        }
        out.insert(name, Tensor::from_vec(data, view.shape()));
    }
    Ok(out)
}
