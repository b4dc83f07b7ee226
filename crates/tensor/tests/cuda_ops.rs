//! Every op of the CUDA device against the CPU engine (the reference) on random inputs, forward and
//! backward. Needs an NVIDIA GPU with its driver (and NVRTC and cuBLAS on the loader path); without
//! one each test prints why it was skipped and passes:
//! `cargo test -p attend-tensor --features cuda --test cuda_ops -- --nocapture`
#![cfg(feature = "cuda")]

use tensor::cuda::elementwise::{self, Binary, Unary};
use tensor::cuda::{self, CudaDevice, CudaError, GpuTensor};
use tensor::ops::flash_attention::flash_attention;
use tensor::ops::recurrence::CellKind;
use tensor::{Rng, Tensor, Var};

/// Opens GPU 0, or says why the GPU checks are skipped.
fn device_or_skip() -> Option<CudaDevice> {
    match cuda::device_count() {
        Err(e) => println!("SKIPPED (no GPU checks): {e}"),
        Ok(0) => println!("SKIPPED (no GPU checks): the CUDA driver reports no device"),
        Ok(_) => match CudaDevice::new(0) {
            Ok(dev) => {
                println!(
                    "GPU: {} (compute capability {:?})",
                    dev.name(),
                    dev.compute_capability()
                );
                return Some(dev);
            }
            Err(e) => panic!("a CUDA device is present but could not be opened: {e}"),
        },
    }
    None
}

fn up(dev: &CudaDevice, t: &Tensor) -> GpuTensor {
    GpuTensor::upload(dev, t).expect("upload")
}

fn down(dev: &CudaDevice, t: &GpuTensor) -> Tensor {
    t.download(dev).expect("download")
}

/// Asserts `gpu ≈ cpu` within `tol · (1 + |cpu|)` element-wise and prints the largest difference.
fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f32) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shapes");
    let mut worst = 0.0f32;
    for (i, (&g, &c)) in gpu.data().iter().zip(cpu.data()).enumerate() {
        let err = (g - c).abs();
        assert!(
            err <= tol * (1.0 + c.abs()) || (g.is_infinite() && g == c),
            "{what}: element {i}: gpu {g} vs cpu {c}"
        );
        if err.is_finite() {
            worst = worst.max(err);
        }
    }
    println!("{what}: max |gpu − cpu| = {worst:.2e}");
}

fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, rng)
}

#[test]
fn without_a_driver_opening_a_device_is_an_error_not_a_panic() {
    if tensor::cuda::library::driver().is_ok() {
        println!("SKIPPED: libcuda.so is loadable here, so the no-driver path cannot be exercised");
        return;
    }
    match CudaDevice::new(0) {
        Err(e @ CudaError::NoDriver(_)) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("no CUDA driver found (libcuda.so not loadable): "),
                "{msg}"
            );
            println!("{msg}");
        }
        Err(e) => panic!("expected NoDriver, got {e}"),
        Ok(_) => panic!("opened a device without a driver"),
    }
}

#[test]
fn matmul_matches_the_cpu_for_every_transpose_batched_and_shared() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(1);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (m, k, n) = (37, 53, 29);
        let sa = if ta { [3, 2, k, m] } else { [3, 2, m, k] };
        let sb = if tb { [3, 2, n, k] } else { [3, 2, k, n] };
        let (a, b) = (randn(&sa, &mut rng), randn(&sb, &mut rng));
        let cpu = Var::constant(a.clone())
            .matmul_t(&Var::constant(b.clone()), ta, tb)
            .to_tensor();
        let gpu = cuda::matmul(&dev, &up(&dev, &a), &up(&dev, &b), ta, tb).unwrap();
        close(
            &format!("matmul batched ta={ta} tb={tb}"),
            &down(&dev, &gpu),
            &cpu,
            1e-4,
        );
        let sw = if tb { [n, k] } else { [k, n] };
        let w = randn(&sw, &mut rng);
        let cpu = Var::constant(a.clone())
            .matmul_t(&Var::constant(w.clone()), ta, tb)
            .to_tensor();
        let gpu = cuda::matmul(&dev, &up(&dev, &a), &up(&dev, &w), ta, tb).unwrap();
        close(
            &format!("matmul shared ta={ta} tb={tb}"),
            &down(&dev, &gpu),
            &cpu,
            1e-4,
        );
    }
}

#[test]
fn unary_ops_match_the_cpu_forward_and_backward() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(2);
    let x = randn(&[7, 33], &mut rng);
    let pos = x.map(|v| v.abs() + 0.1);
    let dy = randn(&[7, 33], &mut rng);
    type CpuOp = fn(&Var) -> Var;
    let cases: [(Unary, CpuOp, &Tensor); 11] = [
        (Unary::Exp, |v| v.exp(), &x),
        (Unary::Log, |v| v.log(), &pos),
        (Unary::Tanh, |v| v.tanh(), &x),
        (Unary::Sigmoid, |v| v.sigmoid(), &x),
        (Unary::Relu, |v| v.relu(), &x),
        (Unary::Gelu, |v| v.gelu(), &x),
        (Unary::Sqrt, |v| v.sqrt(), &pos),
        (Unary::Square, |v| v.square(), &x),
        (Unary::Scale(-1.7), |v| v.scale(-1.7), &x),
        (Unary::AddScalar(0.3), |v| v.add_scalar(0.3), &x),
        (Unary::Neg, |v| v.neg(), &x),
    ];
    for (op, cpu_op, input) in cases {
        let p = Var::parameter(input.clone());
        let y = cpu_op(&p);
        y.backward_with(dy.clone());
        let gx = up(&dev, input);
        let gy = elementwise::unary(&dev, op, &gx).unwrap();
        close(
            &format!("{op:?} forward"),
            &down(&dev, &gy),
            &y.to_tensor(),
            1e-5,
        );
        let gdx = elementwise::unary_backward(&dev, op, &gx, &gy, &up(&dev, &dy)).unwrap();
        close(
            &format!("{op:?} backward"),
            &down(&dev, &gdx),
            &p.grad().unwrap(),
            1e-5,
        );
    }
}

#[test]
fn binary_ops_broadcast_like_the_cpu_forward_and_backward() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(3);
    type CpuOp = fn(&Var, &Var) -> Var;
    let ops: [(Binary, CpuOp); 4] = [
        (Binary::Add, |a, b| a.add(b)),
        (Binary::Sub, |a, b| a.sub(b)),
        (Binary::Mul, |a, b| a.mul(b)),
        (Binary::Div, |a, b| a.div(b)),
    ];
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[4, 5, 6], &[4, 5, 6]),
        (&[4, 5, 6], &[6]),
        (&[4, 1, 6], &[1, 5, 1]),
        (&[5, 1], &[3, 1, 7]),
    ];
    for (op, cpu_op) in ops {
        for (sa, sb) in shapes {
            let a = randn(sa, &mut rng);
            let b = Tensor::uniform(sb, 0.5, 2.0, &mut rng);
            let (pa, pb) = (Var::parameter(a.clone()), Var::parameter(b.clone()));
            let y = cpu_op(&pa, &pb);
            let dy = randn(&y.shape(), &mut rng);
            y.backward_with(dy.clone());
            let (ga, gb) = (up(&dev, &a), up(&dev, &b));
            let gy = elementwise::binary(&dev, op, &ga, &gb).unwrap();
            let what = format!("{op:?} {sa:?}∘{sb:?}");
            close(
                &format!("{what} forward"),
                &down(&dev, &gy),
                &y.to_tensor(),
                1e-5,
            );
            let (da, db) =
                elementwise::binary_backward(&dev, op, &ga, &gb, &up(&dev, &dy)).unwrap();
            close(
                &format!("{what} da"),
                &down(&dev, &da),
                &pa.grad().unwrap(),
                1e-4,
            );
            close(
                &format!("{what} db"),
                &down(&dev, &db),
                &pb.grad().unwrap(),
                1e-4,
            );
        }
    }
    // masked_fill with a broadcast mask
    let x = randn(&[3, 4, 5], &mut rng);
    let mask = Tensor::from_vec(
        (0..15).map(|i| (i % 3 == 0) as u8 as f32).collect(),
        &[3, 1, 5],
    );
    let p = Var::parameter(x.clone());
    let y = p.masked_fill(&mask, -1e9);
    let dy = randn(&[3, 4, 5], &mut rng);
    y.backward_with(dy.clone());
    let (gx, gm) = (up(&dev, &x), up(&dev, &mask));
    let op = Binary::MaskedFill(-1e9);
    close(
        "masked_fill forward",
        &down(&dev, &elementwise::binary(&dev, op, &gx, &gm).unwrap()),
        &y.to_tensor(),
        1e-6,
    );
    let (dx, _) = elementwise::binary_backward(&dev, op, &gx, &gm, &up(&dev, &dy)).unwrap();
    close(
        "masked_fill backward",
        &down(&dev, &dx),
        &p.grad().unwrap(),
        1e-6,
    );
}

#[test]
fn sums_and_means_over_an_axis_match_the_cpu() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(4);
    let x = randn(&[3, 4, 5], &mut rng);
    for axis in [0isize, 1, 2, -1] {
        for mean in [false, true] {
            let p = Var::parameter(x.clone());
            let y = if mean {
                p.mean_axis(axis)
            } else {
                p.sum_axis(axis)
            };
            let dy = randn(&y.shape(), &mut rng);
            y.backward_with(dy.clone());
            let gy = elementwise::reduce_axis(&dev, &up(&dev, &x), axis, mean).unwrap();
            let what = format!("{} axis {axis}", if mean { "mean" } else { "sum" });
            close(&what, &down(&dev, &gy), &y.to_tensor(), 1e-5);
            let gdx =
                elementwise::reduce_axis_backward(&dev, &up(&dev, &dy), x.shape(), axis, mean)
                    .unwrap();
            close(
                &format!("{what} backward"),
                &down(&dev, &gdx),
                &p.grad().unwrap(),
                1e-5,
            );
        }
    }
}

#[test]
fn softmax_and_log_softmax_match_the_cpu() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(5);
    for d in [1usize, 7, 256, 1000] {
        let mut x = randn(&[9, d], &mut rng).map(|v| 3.0 * v);
        if d > 1 {
            // One all-masked row: softmax gives zeros, as on the CPU.
            x.data_mut()[..d].fill(f32::NEG_INFINITY);
        }
        for log in [false, true] {
            let x = if log {
                x.map(|v| v.max(-1e4))
            } else {
                x.clone()
            };
            let p = Var::parameter(x.clone());
            let y = if log { p.log_softmax() } else { p.softmax() };
            let dy = randn(&[9, d], &mut rng);
            y.backward_with(dy.clone());
            let gy = cuda::softmax::forward(&dev, &up(&dev, &x), log).unwrap();
            let what = format!("{} d={d}", if log { "log_softmax" } else { "softmax" });
            close(&what, &down(&dev, &gy), &y.to_tensor(), 1e-5);
            let gdx = cuda::softmax::backward(&dev, &gy, &up(&dev, &dy), log).unwrap();
            close(
                &format!("{what} backward"),
                &down(&dev, &gdx),
                &p.grad().unwrap(),
                1e-4,
            );
        }
    }
}

#[test]
fn layer_norm_matches_the_cpu() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(6);
    for d in [8usize, 512, 1030] {
        let x = randn(&[2, 5, d], &mut rng);
        let (g, b) = (randn(&[d], &mut rng), randn(&[d], &mut rng));
        let (px, pg, pb) = (
            Var::parameter(x.clone()),
            Var::parameter(g.clone()),
            Var::parameter(b.clone()),
        );
        let y = px.layer_norm(&pg, &pb, 1e-5);
        let dy = randn(&[2, 5, d], &mut rng);
        y.backward_with(dy.clone());
        let (gx, gg) = (up(&dev, &x), up(&dev, &g));
        let out = cuda::layer_norm::forward(&dev, &gx, &gg, &up(&dev, &b), 1e-5).unwrap();
        close(
            &format!("layer_norm d={d}"),
            &down(&dev, &out.y),
            &y.to_tensor(),
            1e-4,
        );
        let (dx, dg, db) =
            cuda::layer_norm::backward(&dev, &gx, &gg, &out, &up(&dev, &dy)).unwrap();
        close(
            &format!("layer_norm d={d} dx"),
            &down(&dev, &dx),
            &px.grad().unwrap(),
            1e-3,
        );
        close(
            &format!("layer_norm d={d} dγ"),
            &down(&dev, &dg),
            &pg.grad().unwrap(),
            1e-3,
        );
        close(
            &format!("layer_norm d={d} dβ"),
            &down(&dev, &db),
            &pb.grad().unwrap(),
            1e-3,
        );
    }
}

#[test]
fn embedding_gather_and_scatter_add_match_the_cpu() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(7);
    let table = randn(&[50, 24], &mut rng);
    let ids: Vec<u32> = (0..200).map(|_| rng.below(50) as u32).collect(); // repeats
    let p = Var::parameter(table.clone());
    let y = p.gather_rows(&ids);
    let dy = randn(&[200, 24], &mut rng);
    y.backward_with(dy.clone());
    let gy = cuda::embedding::gather_rows(&dev, &up(&dev, &table), &ids).unwrap();
    close("gather_rows", &down(&dev, &gy), &y.to_tensor(), 0.0);
    let dt = cuda::embedding::scatter_add_rows(&dev, &up(&dev, &dy), &ids, 50).unwrap();
    close(
        "scatter_add_rows",
        &down(&dev, &dt),
        &p.grad().unwrap(),
        1e-5,
    );
}

#[test]
fn cross_entropy_matches_the_cpu_with_smoothing_and_ignore() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(8);
    for (v, smoothing, ignore) in [
        (11usize, 0.0f32, None),
        (5003, 0.1, Some(0u32)),
        (300, 0.2, Some(7)),
    ] {
        let z = randn(&[4, 16, v], &mut rng).map(|x| 2.0 * x);
        let mut targets: Vec<u32> = (0..64).map(|_| rng.below(v) as u32).collect();
        if let Some(i) = ignore {
            for t in targets.iter_mut().step_by(5) {
                *t = i;
            }
        }
        let p = Var::parameter(z.clone());
        let loss = p.cross_entropy(&targets, ignore, smoothing);
        loss.backward();
        let gz = up(&dev, &z);
        let out = cuda::cross_entropy::forward(&dev, &gz, &targets, ignore, smoothing).unwrap();
        let what = format!("cross_entropy V={v} ε={smoothing} ignore={ignore:?}");
        close(&what, &Tensor::scalar(out.loss), &loss.to_tensor(), 1e-5);
        let dz = cuda::cross_entropy::backward(&dev, &gz, &targets, ignore, smoothing, &out, 1.0)
            .unwrap();
        close(
            &format!("{what} dz"),
            &down(&dev, &dz),
            &p.grad().unwrap(),
            1e-5,
        );
    }
}

#[test]
fn gru_and_lstm_recurrences_match_the_cpu_through_time() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(9);
    let (b, t, h) = (4usize, 6usize, 16usize);
    let lengths = [6usize, 3, 1, 0];
    for kind in [CellKind::Gru, CellKind::Lstm] {
        for reverse in [false, true] {
            let g = kind.gates() * h;
            let xp = randn(&[b, t, g], &mut rng);
            let h0 = randn(&[b, h], &mut rng);
            let c0 = randn(&[b, h], &mut rng);
            let w = Tensor::uniform(&[g, h], -0.3, 0.3, &mut rng);
            let bias = Tensor::uniform(&[g], -0.3, 0.3, &mut rng);
            let lstm = kind == CellKind::Lstm;
            let (pxp, ph0, pc0, pw, pb) = (
                Var::parameter(xp.clone()),
                Var::parameter(h0.clone()),
                Var::parameter(c0.clone()),
                Var::parameter(w.clone()),
                Var::parameter(bias.clone()),
            );
            let out = Var::recurrence(
                kind,
                &pxp,
                &ph0,
                lstm.then_some(&pc0),
                &pw,
                &pb,
                &lengths,
                reverse,
            );
            let gout = randn(&out.shape(), &mut rng);
            out.backward_with(gout.clone());
            let (gxp, gw, gc0) = (up(&dev, &xp), up(&dev, &w), up(&dev, &c0));
            let r = cuda::recurrence::forward(
                &dev,
                kind,
                &gxp,
                &up(&dev, &h0),
                lstm.then_some(&gc0),
                &gw,
                &up(&dev, &bias),
                &lengths,
                reverse,
            )
            .unwrap();
            let what = format!("{kind:?} reverse={reverse}");
            close(
                &format!("{what} out"),
                &down(&dev, &r.out),
                &out.to_tensor(),
                1e-4,
            );
            let grads = cuda::recurrence::backward(&dev, &r, &gw, &up(&dev, &gout)).unwrap();
            close(
                &format!("{what} dxp"),
                &down(&dev, &grads.dxp),
                &pxp.grad().unwrap(),
                1e-4,
            );
            close(
                &format!("{what} dh0"),
                &down(&dev, &grads.dh0),
                &ph0.grad().unwrap(),
                1e-4,
            );
            close(
                &format!("{what} dW_hh"),
                &down(&dev, &grads.dw_hh),
                &pw.grad().unwrap(),
                1e-4,
            );
            close(
                &format!("{what} db_hh"),
                &down(&dev, &grads.db_hh),
                &pb.grad().unwrap(),
                1e-4,
            );
            if lstm {
                close(
                    &format!("{what} dc0"),
                    &down(&dev, grads.dc0.as_ref().unwrap()),
                    &pc0.grad().unwrap(),
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn adam_and_adamw_steps_match_an_f64_reference() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(10);
    for decoupled in [false, true] {
        let p0 = randn(&[1000], &mut rng);
        let grads: Vec<Tensor> = (0..3).map(|_| randn(&[1000], &mut rng)).collect();
        let (lr, b1, b2, eps, wd) = (1e-2f32, 0.9f32, 0.999f32, 1e-8f32, 0.1f32);
        // f64 reference (PyTorch's Adam / AdamW).
        let mut p: Vec<f64> = p0.data().iter().map(|&x| x as f64).collect();
        let (mut m, mut v) = (vec![0.0f64; 1000], vec![0.0f64; 1000]);
        let mut gp = up(&dev, &p0);
        let (mut gm, mut gv) = (
            GpuTensor::zeros(&dev, &[1000]).unwrap(),
            GpuTensor::zeros(&dev, &[1000]).unwrap(),
        );
        for (step, g) in grads.iter().enumerate() {
            let t = step as i32 + 1;
            for i in 0..1000 {
                let mut gi = g.data()[i] as f64;
                if decoupled {
                    p[i] *= 1.0 - (lr * wd) as f64;
                } else {
                    gi += wd as f64 * p[i];
                }
                m[i] = b1 as f64 * m[i] + (1.0 - b1 as f64) * gi;
                v[i] = b2 as f64 * v[i] + (1.0 - b2 as f64) * gi * gi;
                let mh = m[i] / (1.0 - (b1 as f64).powi(t));
                let vh = v[i] / (1.0 - (b2 as f64).powi(t));
                p[i] -= lr as f64 * mh / (vh.sqrt() + eps as f64);
            }
            let a = cuda::adam::AdamStep {
                lr,
                beta1: b1,
                beta2: b2,
                eps,
                weight_decay: wd,
                decoupled,
                step: t as u64,
            };
            cuda::adam::step(&dev, a, &mut gp, &up(&dev, g), &mut gm, &mut gv).unwrap();
        }
        let reference = Tensor::from_vec(p.iter().map(|&x| x as f32).collect(), &[1000]);
        close(
            &format!("adam decoupled={decoupled} (3 steps)"),
            &down(&dev, &gp),
            &reference,
            1e-5,
        );
    }
}

#[test]
fn flash_attention_matches_the_cpu_forward_and_backward() {
    let Some(dev) = device_or_skip() else { return };
    let mut rng = Rng::new(11);
    for &d in &cuda::flash_attention::HEAD_SIZES {
        for (t, s, causal, padding) in [
            (70usize, 70usize, true, None),
            (33, 100, false, Some(vec![100usize, 41])),
            (130, 130, true, Some(vec![130, 7])),
            (5, 3, false, Some(vec![0, 3])),
        ] {
            let (bsz, heads) = (2usize, 3usize);
            let q = randn(&[bsz, heads, t, d], &mut rng);
            let k = randn(&[bsz, heads, s, d], &mut rng);
            let v = randn(&[bsz, heads, s, d], &mut rng);
            let scale = 1.0 / (d as f32).sqrt();
            let (pq, pk, pv) = (
                Var::parameter(q.clone()),
                Var::parameter(k.clone()),
                Var::parameter(v.clone()),
            );
            let o = flash_attention(&pq, &pk, &pv, causal, padding.as_deref(), scale, None);
            let dout = randn(&o.shape(), &mut rng);
            o.backward_with(dout.clone());
            let (_, lse) = tensor::ops::flash_attention::flash_attention_forward(
                &q,
                &k,
                &v,
                causal,
                padding.as_deref(),
                scale,
            );
            let (gq, gk, gv) = (up(&dev, &q), up(&dev, &k), up(&dev, &v));
            let out = cuda::flash_attention::forward(
                &dev,
                &gq,
                &gk,
                &gv,
                causal,
                padding.as_deref(),
                scale,
            )
            .unwrap();
            let what = format!("flash d={d} T={t} S={s} causal={causal} padding={padding:?}");
            close(
                &format!("{what} O"),
                &down(&dev, &out.out),
                &o.to_tensor(),
                1e-4,
            );
            close(
                &format!("{what} LSE"),
                &down(&dev, &out.lse),
                &Tensor::from_vec(lse, &[bsz * heads * t]),
                1e-4,
            );
            let (dq, dk, dv) =
                cuda::flash_attention::backward(&dev, &gq, &gk, &gv, &out, &up(&dev, &dout))
                    .unwrap();
            close(
                &format!("{what} dQ"),
                &down(&dev, &dq),
                &pq.grad().unwrap(),
                1e-3,
            );
            close(
                &format!("{what} dK"),
                &down(&dev, &dk),
                &pk.grad().unwrap(),
                1e-3,
            );
            close(
                &format!("{what} dV"),
                &down(&dev, &dv),
                &pv.grad().unwrap(),
                1e-3,
            );
        }
    }
}
