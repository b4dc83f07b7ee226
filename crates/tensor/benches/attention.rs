//! Fused flash attention against the plain path built from engine ops (`softmax(mask(Q Kᵀ·s)) V`),
//! forward + backward, at the translation shapes `benches/vs-peers.sh` compares with PyTorch
//! (`[B, H, T, d]` = 32×8×64×64 and 8×8×256×64).
//!
//! `cargo bench -p attend-tensor --bench attention` (side-by-side numbers against PyTorch come
//! from `benches/vs-peers.sh` at the repository root).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tensor::ops::flash_attention::flash_attention;
use tensor::{Rng, Tensor, Var};

/// Q, K, V and an output gradient, N(0, 1), shape `[B, H, T, d]`.
fn inputs(shape: [usize; 4]) -> (Var, Var, Var, Tensor) {
    let mut rng = Rng::new(0);
    let mut t = || Tensor::randn(&shape, 0.0, 1.0, &mut rng);
    (
        Var::parameter(t()),
        Var::parameter(t()),
        Var::parameter(t()),
        t(),
    )
}

/// The plain path: the whole `[T, T]` score matrix, causal mask by `masked_fill`.
fn plain(q: &Var, k: &Var, v: &Var, causal: bool, scale: f32) -> Var {
    let t = q.dim(2);
    let scores = q.matmul_t(k, false, true).scale(scale);
    let scores = if causal {
        let mask: Vec<f32> = (0..t * t)
            .map(|n| if n % t > n / t { 1.0 } else { 0.0 })
            .collect();
        scores.masked_fill(&Tensor::from_vec(mask, &[t, t]), f32::NEG_INFINITY)
    } else {
        scores
    };
    scores.softmax().matmul(v)
}

fn fwd_bwd(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention_fwd_bwd");
    group.sample_size(20);
    for shape in [[32, 8, 64, 64], [8, 8, 256, 64]] {
        let (q, k, v, g) = inputs(shape);
        let scale = 1.0 / (shape[3] as f32).sqrt();
        for causal in [false, true] {
            let id = format!(
                "{}x{}x{}x{}{}",
                shape[0],
                shape[1],
                shape[2],
                shape[3],
                if causal { " causal" } else { "" }
            );
            group.bench_function(BenchmarkId::new("fused", &id), |b| {
                b.iter(|| {
                    let out = flash_attention(&q, &k, &v, causal, None, scale, None);
                    out.backward_with(g.clone());
                })
            });
            group.bench_function(BenchmarkId::new("plain", &id), |b| {
                b.iter(|| {
                    let out = plain(&q, &k, &v, causal, scale);
                    out.backward_with(g.clone());
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fwd_bwd);
criterion_main!(benches);
