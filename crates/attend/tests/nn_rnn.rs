//! Stacked, bidirectional GRU/LSTM layers over a padded batch: PyTorch golden values (outputs, final
//! states and every gradient of a packed 2-layer bidirectional `nn.GRU`/`nn.LSTM`), agreement with the
//! per-step cells, finite-difference gradient checks, padding invariance, final states of both
//! directions, inter-layer dropout, names, initialisation and input errors.

mod nn_support;

use attend::nn::{CellKind, GruCell, LstmCell, Params, Rnn, RnnConfig, RnnState};
use nn_support::{assert_close, dot, fd_check, fixture, get, weights_like};
use tensor::{Rng, Tensor, Var};

const KINDS: [CellKind; 2] = [CellKind::Gru, CellKind::Lstm];

fn config(input: usize, hidden: usize, layers: usize, bidirectional: bool) -> RnnConfig {
    RnnConfig {
        input_size: input,
        hidden_size: hidden,
        num_layers: layers,
        bidirectional,
        dropout: 0.0,
    }
}

fn build(kind: CellKind, cfg: RnnConfig, seed: u64) -> (Params, Rnn) {
    let mut params = Params::new();
    let rnn = Rnn::new(&mut params, "rnn", kind, cfg, &mut Rng::new(seed)).unwrap();
    (params, rnn)
}

fn lstm(kind: CellKind) -> bool {
    kind == CellKind::Lstm
}

#[test]
fn matches_pytorch_packed_bidirectional_two_layers() {
    for (kind, file) in [(CellKind::Gru, "gru"), (CellKind::Lstm, "lstm")] {
        let fx = fixture(file);
        let (params, rnn) = build(kind, config(5, 8, 2, true), 0);
        for (name, var) in params.iter() {
            *var.value_mut() = get(&fx, name.strip_prefix("rnn.").unwrap()).clone();
        }
        let lengths: Vec<usize> = get(&fx, "lengths")
            .data()
            .iter()
            .map(|&l| l as usize)
            .collect();
        let x = Var::parameter(get(&fx, "x").clone());
        let h0 = Var::parameter(get(&fx, "h0").clone());
        let c0 = lstm(kind).then(|| Var::parameter(get(&fx, "c0").clone()));
        let init = RnnState {
            h: h0.clone(),
            c: c0.clone(),
        };
        let out = rnn.forward(&x, &lengths, Some(&init), None).unwrap();
        let tol = 1e-5;
        assert_close(
            &format!("{file} output"),
            &out.output.to_tensor(),
            get(&fx, "output"),
            tol,
        );
        assert_close(
            &format!("{file} h_n"),
            &out.state.h.to_tensor(),
            get(&fx, "h_n"),
            tol,
        );
        let mut loss = dot(&out.output, get(&fx, "grad_out.output"))
            .add(&dot(&out.state.h, get(&fx, "grad_out.h_n")));
        if let Some(c) = &out.state.c {
            assert_close(&format!("{file} c_n"), &c.to_tensor(), get(&fx, "c_n"), tol);
            loss = loss.add(&dot(c, get(&fx, "grad_out.c_n")));
        }
        loss.backward();
        assert_close(
            &format!("{file} grad.x"),
            &x.grad().unwrap(),
            get(&fx, "grad.x"),
            tol,
        );
        assert_close(
            &format!("{file} grad.h0"),
            &h0.grad().unwrap(),
            get(&fx, "grad.h0"),
            tol,
        );
        if let Some(c0) = &c0 {
            assert_close(
                &format!("{file} grad.c0"),
                &c0.grad().unwrap(),
                get(&fx, "grad.c0"),
                tol,
            );
        }
        for (name, var) in params.iter() {
            let key = format!("grad.{}", name.strip_prefix("rnn.").unwrap());
            assert_close(
                &format!("{file} {key}"),
                &var.grad().unwrap(),
                get(&fx, &key),
                tol,
            );
        }
    }
}

#[test]
fn parameter_names_and_shapes_are_pytorchs() {
    for (kind, file) in [(CellKind::Gru, "gru"), (CellKind::Lstm, "lstm")] {
        let fx = fixture(file);
        let (params, _) = build(kind, config(5, 8, 2, true), 0);
        let mut torch: Vec<(String, Vec<usize>)> = fx
            .iter()
            .filter(|(k, _)| k.starts_with("weight_") || k.starts_with("bias_"))
            .map(|(k, t)| (format!("rnn.{k}"), t.shape().to_vec()))
            .collect();
        let mut ours: Vec<(String, Vec<usize>)> = params
            .iter()
            .map(|(n, v)| (n.to_string(), v.shape()))
            .collect();
        torch.sort();
        ours.sort();
        assert_eq!(ours, torch, "{file}");
    }
}

#[test]
fn initialisation_is_uniform_within_one_over_sqrt_hidden() {
    for kind in KINDS {
        let (params, _) = build(kind, config(6, 16, 2, true), 3);
        let bound = 1.0 / 4.0;
        for (name, v) in params.iter() {
            let t = v.to_tensor();
            let max = t.data().iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(max <= bound, "{name}: |w| up to {max} > {bound}");
            // U(−a, a) has E|w| = a/2: the values fill the interval.
            let mean_abs = t.data().iter().map(|x| x.abs()).sum::<f32>() / t.numel() as f32;
            assert!(
                (mean_abs - bound / 2.0).abs() < 0.05,
                "{name}: mean |w| {mean_abs}"
            );
        }
    }
}

/// Runs the cells one sequence at a time over its real tokens only: the oracle of the layer.
/// Returns `(outputs [len, D·H] per sequence, final h (and c) [L·D, H] per sequence)`.
fn cell_oracle(
    kind: CellKind,
    rnn: &Rnn,
    x: &Tensor,
    lengths: &[usize],
) -> Vec<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
    let cfg = rnn.config();
    let h = cfg.hidden_size;
    let dirs = rnn.directions();
    let mut result = Vec::new();
    for (b, &len) in lengths.iter().enumerate() {
        let t = x.shape()[1];
        let mut input: Vec<Var> = (0..len)
            .map(|s| {
                let d = x.shape()[2];
                let row = x.data()[(b * t + s) * d..(b * t + s + 1) * d].to_vec();
                Var::constant(Tensor::from_vec(row, &[1, d]))
            })
            .collect();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for l in 0..cfg.num_layers {
            let mut per_dir: Vec<Vec<Var>> = Vec::new();
            for d in 0..dirs {
                let w = rnn.weights(l, d);
                // A cell with this layer-direction's weights, via its own Params (same values).
                let mut p = Params::new();
                let in_size = w.weight_ih.dim(1);
                let copy = |cell_w: &attend::nn::rnn::RnnWeights| {
                    *cell_w.weight_ih.value_mut() = w.weight_ih.to_tensor();
                    *cell_w.weight_hh.value_mut() = w.weight_hh.to_tensor();
                    *cell_w.bias_ih.value_mut() = w.bias_ih.to_tensor();
                    *cell_w.bias_hh.value_mut() = w.bias_hh.to_tensor();
                };
                let order: Vec<usize> = if d == 0 {
                    (0..len).collect()
                } else {
                    (0..len).rev().collect()
                };
                let mut state = Var::constant(Tensor::zeros(&[1, h]));
                let mut cell_c = Var::constant(Tensor::zeros(&[1, h]));
                let mut outs = vec![state.clone(); len];
                match kind {
                    CellKind::Gru => {
                        let cell = GruCell::new(&mut p, "c", in_size, h, &mut Rng::new(0));
                        copy(&cell.weights);
                        for &s in &order {
                            state = cell.step(&input[s], &state);
                            outs[s] = state.clone();
                        }
                    }
                    CellKind::Lstm => {
                        let cell = LstmCell::new(&mut p, "c", in_size, h, &mut Rng::new(0));
                        copy(&cell.weights);
                        for &s in &order {
                            (state, cell_c) = cell.step(&input[s], &state, &cell_c);
                            outs[s] = state.clone();
                        }
                    }
                }
                hs.push(state.to_tensor().reshape(&[h]));
                cs.push(cell_c.to_tensor().reshape(&[h]));
                per_dir.push(outs);
            }
            input = (0..len)
                .map(|s| {
                    let parts: Vec<Var> = per_dir.iter().map(|o| o[s].clone()).collect();
                    Var::concat(&parts, -1)
                })
                .collect();
        }
        let out: Vec<f32> = input
            .iter()
            .flat_map(|v| v.to_tensor().into_data())
            .collect();
        result.push((
            Tensor::from_vec(out, &[len, dirs * h]),
            hs,
            if lstm(kind) { cs } else { Vec::new() },
        ));
    }
    result
}

#[test]
fn layer_equals_cells_run_over_each_sequence() {
    let mut rng = Rng::new(21);
    for kind in KINDS {
        for (layers, bidirectional) in [(1, false), (1, true), (3, true), (2, false)] {
            let (_, rnn) = build(kind, config(4, 5, layers, bidirectional), 9);
            let lengths = [6, 1, 3, 5];
            let x = Tensor::randn(&[4, 6, 4], 0.0, 1.0, &mut rng);
            let out = rnn
                .forward(&Var::constant(x.clone()), &lengths, None, None)
                .unwrap();
            let output = out.output.to_tensor();
            let h_n = out.state.h.to_tensor();
            let dh = rnn.directions() * 5;
            let oracle = cell_oracle(kind, &rnn, &x, &lengths);
            for (b, (want_out, want_h, want_c)) in oracle.iter().enumerate() {
                let len = lengths[b];
                let got: Vec<f32> = output.data()[b * 6 * dh..(b * 6 + len) * dh].to_vec();
                let what = format!("{kind:?} layers={layers} bi={bidirectional} seq {b}");
                assert_close(
                    &format!("{what} output"),
                    &Tensor::from_vec(got, &[len, dh]),
                    want_out,
                    1e-5,
                );
                for (i, wh) in want_h.iter().enumerate() {
                    let got = h_n.data()[(i * 4 + b) * 5..(i * 4 + b + 1) * 5].to_vec();
                    assert_close(
                        &format!("{what} h_n[{i}]"),
                        &Tensor::from_vec(got, &[5]),
                        wh,
                        1e-5,
                    );
                }
                if let Some(c_n) = &out.state.c {
                    let c_n = c_n.to_tensor();
                    for (i, wc) in want_c.iter().enumerate() {
                        let got = c_n.data()[(i * 4 + b) * 5..(i * 4 + b + 1) * 5].to_vec();
                        assert_close(
                            &format!("{what} c_n[{i}]"),
                            &Tensor::from_vec(got, &[5]),
                            wc,
                            1e-5,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    for kind in KINDS {
        for (layers, bidirectional) in [(2, true), (1, false)] {
            let (params, rnn) = build(kind, config(3, 2, layers, bidirectional), 4);
            let mut rng = Rng::new(8);
            let n = layers * rnn.directions();
            let x = Var::parameter(Tensor::randn(&[3, 4, 3], 0.0, 1.0, &mut rng));
            let h0 = Var::parameter(Tensor::randn(&[n, 3, 2], 0.0, 0.5, &mut rng));
            let c0 =
                lstm(kind).then(|| Var::parameter(Tensor::randn(&[n, 3, 2], 0.0, 0.5, &mut rng)));
            let lengths = [4, 2, 3];
            let init = RnnState {
                h: h0.clone(),
                c: c0.clone(),
            };
            let loss = || {
                let out = rnn.forward(&x, &lengths, Some(&init), None).unwrap();
                let mut l = dot(&out.output, &weights_like(&out.output.shape(), 1))
                    .add(&dot(&out.state.h, &weights_like(&[n, 3, 2], 2)));
                if let Some(c) = &out.state.c {
                    l = l.add(&dot(c, &weights_like(&[n, 3, 2], 3)));
                }
                l
            };
            let mut vars = params.vars();
            vars.push(x.clone());
            vars.push(h0.clone());
            vars.extend(c0.clone());
            let err = fd_check(&vars, loss, 1e-2);
            assert!(
                err < 2e-3,
                "{kind:?} layers={layers} bi={bidirectional}: {err}"
            );
        }
    }
}

#[test]
fn padded_positions_change_no_real_output_nor_final_state() {
    let mut rng = Rng::new(5);
    for kind in KINDS {
        let (_, rnn) = build(kind, config(3, 4, 2, true), 6);
        let lengths = [5, 2, 4];
        let x = Tensor::randn(&[3, 5, 3], 0.0, 1.0, &mut rng);
        let mut y = x.clone();
        for (b, &len) in lengths.iter().enumerate() {
            for v in &mut y.data_mut()[(b * 5 + len) * 3..(b + 1) * 5 * 3] {
                *v = 50.0 * rng.normal();
            }
        }
        let xv = Var::parameter(x);
        let a = rnn.forward(&xv, &lengths, None, None).unwrap();
        let b = rnn
            .forward(&Var::constant(y), &lengths, None, None)
            .unwrap();
        let (oa, ob) = (a.output.to_tensor(), b.output.to_tensor());
        assert_eq!(oa.data(), ob.data(), "{kind:?} outputs");
        assert_eq!(
            a.state.h.to_tensor().data(),
            b.state.h.to_tensor().data(),
            "{kind:?} h_n"
        );
        if let (Some(ca), Some(cb)) = (&a.state.c, &b.state.c) {
            assert_eq!(ca.to_tensor().data(), cb.to_tensor().data(), "{kind:?} c_n");
        }
        // Outputs at padded positions are exactly 0, and no gradient reaches padded inputs.
        dot(&a.output, &weights_like(&[3, 5, 8], 4))
            .add(&dot(&a.state.h, &weights_like(&[4, 3, 4], 5)))
            .backward();
        let gx = xv.grad().unwrap();
        for (b, &len) in lengths.iter().enumerate() {
            assert!(oa.data()[(b * 5 + len) * 8..(b + 1) * 5 * 8]
                .iter()
                .all(|&v| v == 0.0));
            assert!(gx.data()[(b * 5 + len) * 3..(b + 1) * 5 * 3]
                .iter()
                .all(|&v| v == 0.0));
        }
    }
}

#[test]
fn bidirectional_final_states_are_the_ends_of_each_direction() {
    let mut rng = Rng::new(12);
    for kind in KINDS {
        let (_, bi) = build(kind, config(3, 4, 1, true), 2);
        let lengths = [5, 3, 1];
        let x = Tensor::randn(&[3, 5, 3], 0.0, 1.0, &mut rng);
        let out = bi
            .forward(&Var::constant(x.clone()), &lengths, None, None)
            .unwrap();
        let (o, h_n) = (out.output.to_tensor(), out.state.h.to_tensor());
        // A forward-only RNN with the reverse weights, run on each sequence's real tokens reversed.
        let (_, uni) = build(kind, config(3, 4, 1, false), 0);
        let (wr, wu) = (bi.weights(0, 1), uni.weights(0, 0));
        *wu.weight_ih.value_mut() = wr.weight_ih.to_tensor();
        *wu.weight_hh.value_mut() = wr.weight_hh.to_tensor();
        *wu.bias_ih.value_mut() = wr.bias_ih.to_tensor();
        *wu.bias_hh.value_mut() = wr.bias_hh.to_tensor();
        for (b, &len) in lengths.iter().enumerate() {
            let row = |t: usize, from: usize| o.data()[(b * 5 + t) * 8 + from..][..4].to_vec();
            let hn = |i: usize| h_n.data()[(i * 3 + b) * 4..][..4].to_vec();
            // forward final = forward output at the last real token; backward final = backward
            // output at position 0
            assert_eq!(hn(0), row(len - 1, 0), "{kind:?} seq {b} fwd");
            assert_eq!(hn(1), row(0, 4), "{kind:?} seq {b} bwd");
            let rev: Vec<f32> = (0..len)
                .rev()
                .flat_map(|t| x.data()[(b * 5 + t) * 3..][..3].to_vec())
                .collect();
            let r = uni
                .forward(
                    &Var::constant(Tensor::from_vec(rev, &[1, len, 3])),
                    &[len],
                    None,
                    None,
                )
                .unwrap();
            assert_close(
                &format!("{kind:?} seq {b} reversed run"),
                &Tensor::from_vec(hn(1), &[4]),
                &r.state.h.to_tensor().reshape(&[4]),
                1e-6,
            );
            let ro = r.output.to_tensor();
            for t in 0..len {
                assert_close(
                    &format!("{kind:?} seq {b} bwd output {t}"),
                    &Tensor::from_vec(row(t, 4), &[4]),
                    &Tensor::from_vec(ro.data()[(len - 1 - t) * 4..][..4].to_vec(), &[4]),
                    1e-6,
                );
            }
        }
    }
}

#[test]
fn dropout_applies_between_layers_in_training_only() {
    let mut rng = Rng::new(1);
    let x = Var::constant(Tensor::randn(&[2, 4, 3], 0.0, 1.0, &mut rng));
    let lengths = [4, 3];
    for kind in KINDS {
        let mut cfg = config(3, 6, 2, true);
        cfg.dropout = 0.5;
        let (_, rnn) = build(kind, cfg, 3);
        let eval = rnn
            .forward(&x, &lengths, None, None)
            .unwrap()
            .output
            .to_tensor();
        let train = rnn
            .forward(&x, &lengths, None, Some(&mut Rng::new(2)))
            .unwrap()
            .output
            .to_tensor();
        assert!(
            eval.max_abs_diff(&train) > 1e-3,
            "{kind:?}: dropout had no effect"
        );
        let again = rnn
            .forward(&x, &lengths, None, Some(&mut Rng::new(2)))
            .unwrap()
            .output
            .to_tensor();
        assert_eq!(
            train.data(),
            again.data(),
            "{kind:?}: same seed, same masks"
        );
        // A single layer has no inter-layer dropout.
        cfg.num_layers = 1;
        let (_, one) = build(kind, cfg, 3);
        let e = one
            .forward(&x, &lengths, None, None)
            .unwrap()
            .output
            .to_tensor();
        let t = one
            .forward(&x, &lengths, None, Some(&mut Rng::new(2)))
            .unwrap()
            .output
            .to_tensor();
        assert_eq!(e.data(), t.data());
    }
}

#[test]
fn bad_inputs_are_errors() {
    let (_, gru) = build(CellKind::Gru, config(3, 4, 2, true), 0);
    let (_, lstm_rnn) = build(CellKind::Lstm, config(3, 4, 1, false), 0);
    let x = Var::constant(Tensor::zeros(&[2, 5, 3]));
    let msg = |r: Result<attend::nn::RnnOutput, attend::nn::rnn::RnnError>| {
        r.err().expect("an error").to_string()
    };
    assert!(msg(gru.forward(&x, &[5], None, None)).contains("1 lengths for a batch of 2"));
    assert!(msg(gru.forward(&x, &[5, 0], None, None)).contains("length 0"));
    assert!(msg(gru.forward(&x, &[6, 2], None, None)).contains("length 6"));
    let wrong = Var::constant(Tensor::zeros(&[2, 5, 4]));
    assert!(msg(gru.forward(&wrong, &[5, 2], None, None)).contains("[batch, time, 3]"));
    let bad_h = RnnState {
        h: Var::constant(Tensor::zeros(&[2, 2, 4])),
        c: None,
    };
    assert!(msg(gru.forward(&x, &[5, 2], Some(&bad_h), None)).contains("[4, 2, 4]"));
    let no_c = RnnState {
        h: Var::constant(Tensor::zeros(&[1, 2, 4])),
        c: None,
    };
    assert!(msg(lstm_rnn.forward(&x, &[5, 2], Some(&no_c), None)).contains("needs both h and c"));
    let mut p = Params::new();
    let mut cfg = config(3, 4, 1, false);
    cfg.dropout = 1.0;
    assert!(Rnn::new(&mut p, "r", CellKind::Gru, cfg, &mut Rng::new(0)).is_err());
    cfg.dropout = 0.0;
    cfg.hidden_size = 0;
    assert!(Rnn::new(&mut p, "r", CellKind::Gru, cfg, &mut Rng::new(0)).is_err());
}
