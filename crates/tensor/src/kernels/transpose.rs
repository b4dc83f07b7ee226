//! Matrix transposes by 16 × 16 tiles: `dst = srcᵀ` for row-major blocks with their own row
//! strides. With AVX-512 a whole tile is transposed in registers (16 loads, 64 shuffles, 16
//! stores); partial tiles and other CPUs take the plain loop.

use super::isa::{isa, Isa};

/// `dst[j·ldd + i] = src[i·ld + j]` for `i < rows`, `j < cols` (`dst = srcᵀ`), by 16 × 16 tiles
/// (in registers with AVX-512).
pub fn transpose(src: &[f32], ld: usize, rows: usize, cols: usize, dst: &mut [f32], ldd: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * ld + cols <= src.len() && (cols - 1) * ldd + rows <= dst.len(),
        "transpose out of bounds"
    );
    // SAFETY: bounds asserted above; `dst` is borrowed exclusively.
    unsafe { transpose_raw(src.as_ptr(), ld, rows, cols, dst.as_mut_ptr(), ldd) }
}

/// [`transpose`] through raw pointers, for blocks of a matrix that other threads write elsewhere
/// (columns of one row-major matrix, which no slice can hold without overlapping).
///
/// # Safety
/// `src` is readable at `i·ld + j` and `dst` writable at `j·ldd + i` for every `i < rows`,
/// `j < cols`; no other thread touches those elements meanwhile.
pub unsafe fn transpose_raw(
    src: *const f32,
    ld: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    ldd: usize,
) {
    const TILE: usize = 16;
    let avx512 = isa() == Isa::Avx512;
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            let (i1, j1) = ((i0 + TILE).min(rows), (j0 + TILE).min(cols));
            #[cfg(target_arch = "x86_64")]
            if avx512 && i1 - i0 == TILE && j1 - j0 == TILE {
                // SAFETY: the tile lies inside the caller's bounds; AVX-512F is present.
                unsafe {
                    avx512::transpose16(src.add(i0 * ld + j0), ld, dst.add(j0 * ldd + i0), ldd)
                };
                continue;
            }
            for i in i0..i1 {
                for j in j0..j1 {
                    // SAFETY: i < rows, j < cols: inside the caller's bounds.
                    unsafe { *dst.add(j * ldd + i) = *src.add(i * ld + j) };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// A 16 × 16 tile: `dst[j·ldd + i] = src[i·ld + j]`, in registers: interleave pairs of rows,
    /// then 4 × 4 blocks within 128-bit lanes, then whole lanes in two rounds.
    ///
    /// # Safety
    /// The CPU has AVX-512F; 16 rows of 16 values are readable at `src` (row stride `ld`) and
    /// writable at `dst` (row stride `ldd`).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transpose16(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, r) in r.iter_mut().enumerate() {
            *r = _mm512_loadu_ps(src.add(i * ld));
        }
        // t: within each lane L, rows 2h, 2h+1 interleaved (columns 4L, 4L+1 | 4L+2, 4L+3)
        let mut t = [_mm512_setzero_ps(); 16];
        for h in 0..8 {
            t[2 * h] = _mm512_unpacklo_ps(r[2 * h], r[2 * h + 1]);
            t[2 * h + 1] = _mm512_unpackhi_ps(r[2 * h], r[2 * h + 1]);
        }
        // u[4g + c]: lane L holds column 4L + c, rows 4g..4g+4
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (t0, t1, t2, t3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm512_shuffle_ps::<0x44>(t0, t2);
            u[4 * g + 1] = _mm512_shuffle_ps::<0xee>(t0, t2);
            u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(t1, t3);
            u[4 * g + 3] = _mm512_shuffle_ps::<0xee>(t1, t3);
        }
        // Output row 4L + c gathers lane L of u[c], u[4 + c], u[8 + c], u[12 + c].
        for c in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
            let v1 = _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]);
            let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
            let v3 = _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]);
            _mm512_storeu_ps(dst.add(c * ldd), _mm512_shuffle_f32x4::<0x88>(v0, v2));
            _mm512_storeu_ps(dst.add((4 + c) * ldd), _mm512_shuffle_f32x4::<0x88>(v1, v3));
            _mm512_storeu_ps(dst.add((8 + c) * ldd), _mm512_shuffle_f32x4::<0xdd>(v0, v2));
            _mm512_storeu_ps(
                dst.add((12 + c) * ldd),
                _mm512_shuffle_f32x4::<0xdd>(v1, v3),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole tiles (the register path), partial tiles and strides wider than the block, against
    /// the index formula.
    #[test]
    fn transpose_matches_the_index_formula() {
        for (rows, cols, ld, ldd) in [
            (1, 1, 1, 1),
            (16, 16, 16, 16),
            (32, 48, 50, 40),
            (17, 33, 33, 17),
            (64, 5, 64, 70),
            (3, 100, 120, 3),
        ] {
            let src: Vec<f32> = (0..(rows - 1) * ld + cols).map(|i| i as f32).collect();
            let mut dst = vec![-1.0f32; (cols - 1) * ldd + rows];
            transpose(&src, ld, rows, cols, &mut dst, ldd);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(dst[j * ldd + i], src[i * ld + j], "{rows}x{cols} [{i},{j}]");
                }
            }
            // Between the rows of dst (ldd > rows) nothing is written.
            for j in 0..cols.saturating_sub(1) {
                for i in rows..ldd {
                    assert_eq!(dst[j * ldd + i], -1.0);
                }
            }
        }
    }
}
