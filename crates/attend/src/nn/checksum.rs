//! The checksum attend stores in the metadata of every safetensors file it writes, so that a
//! checkpoint damaged on disk (a flipped byte in the middle of a weight) is refused at load instead
//! of serving a different model.
//!
//! ```text
//! crc32( for each tensor, in name order:
//!          len(name) name  len(dtype) dtype  rank dim_0 … dim_{rank-1}  len(bytes) bytes )
//! ```
//!
//! Lengths and dimensions are little-endian u64, so the checksum covers the names, dtypes, shapes
//! and bytes of the tensors, independently of where the safetensors header places them. It is
//! stored as eight hex digits under the metadata key [`KEY`]. CRC-32 detects every burst error
//! up to 32 bits and any other damage with probability 1 − 2⁻³²; it guards against corruption,
//! not against tampering.

use crc32fast::Hasher;

/// The safetensors metadata key holding the checksum.
pub const KEY: &str = "attend.crc32";

/// One tensor as the checksum sees it.
pub struct TensorBytes<'a> {
    pub name: &'a str,
    /// The safetensors dtype name, e.g. `F32`.
    pub dtype: &'a str,
    pub shape: &'a [usize],
    /// The little-endian data.
    pub data: &'a [u8],
}

/// The checksum of `tensors`, as stored under [`KEY`] (eight lower-case hex digits). The order
/// of `tensors` does not matter: they are hashed in name order.
pub fn checksum(tensors: &mut [TensorBytes]) -> String {
    tensors.sort_by(|a, b| a.name.cmp(b.name));
    let mut h = Hasher::new();
    let len = |h: &mut Hasher, n: usize| h.update(&(n as u64).to_le_bytes());
    for t in tensors.iter() {
        for field in [t.name.as_bytes(), t.dtype.as_bytes()] {
            len(&mut h, field.len());
            h.update(field);
        }
        len(&mut h, t.shape.len());
        for &d in t.shape {
            len(&mut h, d);
        }
        len(&mut h, t.data.len());
        h.update(t.data);
    }
    format!("{:08x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one<'a>(name: &'a str, shape: &'a [usize], data: &'a [u8]) -> TensorBytes<'a> {
        TensorBytes {
            name,
            dtype: "F32",
            shape,
            data,
        }
    }

    #[test]
    fn order_free_and_sensitive_to_every_field() {
        let (a, b) = ([1u8, 2, 3, 4], [5u8, 6, 7, 8, 9, 10, 11, 12]);
        let base = checksum(&mut [one("a", &[1], &a), one("b", &[2], &b)]);
        assert_eq!(base.len(), 8);
        assert_eq!(
            base,
            checksum(&mut [one("b", &[2], &b), one("a", &[1], &a)])
        );
        let flipped = [1u8, 2, 3 ^ 0x10, 4];
        let variants = [
            checksum(&mut [one("a", &[1], &flipped), one("b", &[2], &b)]),
            checksum(&mut [one("c", &[1], &a), one("b", &[2], &b)]),
            checksum(&mut [one("a", &[1], &a), one("b", &[1, 2], &b)]),
            checksum(&mut [
                TensorBytes {
                    dtype: "I32",
                    ..one("a", &[1], &a)
                },
                one("b", &[2], &b),
            ]),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }
}
