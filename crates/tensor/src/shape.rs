//! Shape arithmetic: element counts, axis normalisation, broadcasting.

/// Number of elements of a shape (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Resolves a possibly negative axis against `rank`.
pub fn axis_index(axis: isize, rank: usize) -> usize {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    assert!(
        a >= 0 && (a as usize) < rank,
        "axis {axis} out of range for rank {rank}"
    );
    a as usize
}

/// Row-major strides of a contiguous shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// NumPy broadcasting: shapes are aligned at the last axis; each pair of sizes must be equal or one.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides for reading a tensor of shape `src` as if it had shape `out` (0 where broadcast).
pub fn broadcast_strides(src: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(src);
    let off = out.len() - src.len();
    (0..out.len())
        .map(|i| {
            if i < off || src[i - off] == 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}
