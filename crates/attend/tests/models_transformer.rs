//! The Transformer: equal to PyTorch's `nn.Transformer` (golden logits, memory, greedy ids and
//! gradients, pre-norm ReLU and post-norm GELU), cached decoding equal to recomputing the prefix
//! (greedy and beam), the causal mask, padding invariance, finite-difference gradients.

mod attention_support;

use attend::config::{Config, ModelKind};
use attend::data::batcher::Batch;
use attend::data::tokenizer::{BOS, EOS};
use attend::models::transformer::{Activation, NormPlacement};
use attend::models::transformer::{PositionKind, Transformer, TransformerError, TransformerSpec};
use attend::models::{Decoding, Seq2Seq, StepOutput};
use attend::nn::Params;
use attend::search::{beam_search, greedy, BeamConfig, Hypothesis};
use attend::translate::{check_sources, translate_ids};
use attention_support::{assert_tensors_close, fixture, get, grad};
use safetensors::SafeTensors;
use tensor::{Rng, Tensor, Var};

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(format!("{name}.safetensors"))
}

/// The fixture's `__metadata__["config"]` JSON.
fn fixture_config(name: &str) -> serde_json::Value {
    let bytes = std::fs::read(fixture_path(name)).expect("fixture exists");
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("valid safetensors");
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("config"))
        .expect("fixture has a config")
        .clone();
    serde_json::from_str(&text).expect("config is JSON")
}

/// The spec the fixture metadata describes (sinusoidal positions, √d scale, nothing shared).
fn fixture_spec(meta: &serde_json::Value) -> TransformerSpec {
    let n = |k: &str| meta[k].as_u64().unwrap_or_else(|| panic!("metadata {k}")) as usize;
    TransformerSpec {
        src_vocab: n("vocab"),
        tgt_vocab: n("vocab"),
        d_model: n("d_model"),
        heads: n("nhead"),
        ff_size: n("dim_feedforward"),
        encoder_layers: n("layers"),
        decoder_layers: n("layers"),
        activation: match meta["activation"].as_str() {
            Some("relu") => Activation::Relu,
            Some("gelu") => Activation::Gelu,
            other => panic!("activation {other:?}"),
        },
        norm: if meta["norm_first"].as_bool() == Some(true) {
            NormPlacement::Pre
        } else {
            NormPlacement::Post
        },
        positions: PositionKind::Sinusoidal,
        max_positions: n("max_len"),
        scale_embeddings: true,
        shared_embeddings: false,
        tie_output: false,
        final_norm: true,
        source_bos: false,
        source_eos: false,
        dropout: 0.0,
        attention_dropout: 0.0,
    }
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|&x| x as u32).collect()
}

/// Greedy decoding as the fixture does it: exactly `steps` argmax steps from `<s>`, EOS masked.
fn greedy_eos_masked(
    model: &Transformer,
    src: &[u32],
    len: &[usize],
    s: usize,
    steps: usize,
) -> Vec<u32> {
    let rows = len.len();
    let mut dec = model.begin(src, len, s);
    let mut prev = vec![BOS; rows];
    let mut out = vec![Vec::new(); rows];
    for _ in 0..steps {
        let step = tensor::no_grad(|| dec.step(&prev));
        let v = step.logits.dim(-1);
        for (r, o) in out.iter_mut().enumerate() {
            let mut row = step.logits.data()[r * v..(r + 1) * v].to_vec();
            row[EOS as usize] = f32::NEG_INFINITY;
            let best = (0..v).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as u32;
            o.push(best);
            prev[r] = best;
        }
    }
    out.concat()
}

fn golden(name: &str) {
    let meta = fixture_config(name);
    let f = fixture(name);
    let model = Transformer::new(fixture_spec(&meta), 0).expect("builds");
    model
        .params()
        .load(&fixture_path(name))
        .expect("the state_dict loads by name");
    let src = ids(&get(&f, "src"));
    let len: Vec<usize> = get(&f, "src_lengths")
        .data()
        .iter()
        .map(|&x| x as usize)
        .collect();
    let tgt_in = ids(&get(&f, "tgt_in"));
    let (b, s, t) = (len.len(), get(&f, "src").dim(1), get(&f, "tgt_in").dim(1));
    // Both attention paths: the plain ops (weights returned) and the fused kernel.
    for weights in [true, false] {
        let enc = tensor::no_grad(|| model.encode(&src, &len, s, None, weights)).expect("encodes");
        assert_tensors_close(&enc.memory.to_tensor(), &get(&f, "memory"), 1e-4, "memory");
        let out = model
            .forward(&src, &len, s, &tgt_in, t, None, weights)
            .expect("runs");
        assert_tensors_close(&out.logits.to_tensor(), &get(&f, "logits"), 1e-4, "logits");
        // Gradients of L = Σ logits ⊙ grad_out.logits for every parameter.
        model.params().zero_grad();
        out.logits
            .mul(&Var::constant(get(&f, "grad_out.logits")))
            .sum_all()
            .backward();
        for (pname, p) in model.params().iter() {
            let what = format!("{pname} (weights returned: {weights})");
            assert_tensors_close(&grad(p), &get(&f, &format!("grad.{pname}")), 1e-4, &what);
        }
    }
    // The parameters are exactly the fixture's trainable ones.
    let expected = f.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(model.params().len(), expected, "{name}: parameter count");
    let greedy_ids = get(&f, "greedy_ids");
    let steps = greedy_ids.dim(1);
    assert_eq!(
        greedy_eos_masked(&model, &src, &len, s, steps),
        ids(&greedy_ids),
        "{name}: greedy ids"
    );
    assert_eq!(b, 3);
}

#[test]
fn prenorm_relu_equals_pytorch() {
    golden("transformer");
}

#[test]
fn postnorm_gelu_equals_pytorch() {
    golden("transformer_postnorm");
}

/// A small random model (to make decoding non-trivial, biases and norms are not at their init).
fn tiny_spec(norm: NormPlacement, positions: PositionKind, shared: bool) -> TransformerSpec {
    TransformerSpec {
        src_vocab: 13,
        tgt_vocab: 13,
        d_model: 8,
        heads: 2,
        ff_size: 12,
        encoder_layers: 2,
        decoder_layers: 2,
        activation: Activation::Gelu,
        norm,
        positions,
        max_positions: 32,
        scale_embeddings: true,
        shared_embeddings: shared,
        tie_output: shared,
        final_norm: true,
        source_bos: false,
        source_eos: false,
        dropout: 0.0,
        attention_dropout: 0.0,
    }
}

fn tiny(norm: NormPlacement, positions: PositionKind, shared: bool, seed: u64) -> Transformer {
    let model = Transformer::new(tiny_spec(norm, positions, shared), seed).expect("builds");
    let mut rng = Rng::new(seed + 100);
    for (name, p) in model.params().iter() {
        if name.ends_with("bias") || name.contains("norm") {
            let noise = Tensor::randn(&p.shape(), 0.0, 0.3, &mut rng);
            p.value_mut().add_assign(&noise);
        }
    }
    // Make early EOS less likely so that decoding runs several steps.
    model
        .params()
        .get("out_proj.bias")
        .expect("bias")
        .value_mut()
        .data_mut()[EOS as usize] -= 2.0;
    model
}

fn batch() -> Batch {
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = vec![
        (vec![4, 5, 6, 7, 8], vec![9, 10, 11]),
        (vec![11, 4], vec![5, 6, 7, 12, 4]),
        (vec![9, 12, 9], vec![6]),
    ];
    let refs: Vec<(&[u32], &[u32])> = pairs
        .iter()
        .map(|(s, t)| (s.as_slice(), t.as_slice()))
        .collect();
    Batch::new(&refs, vec![0, 1, 2])
}

/// Decoding without a cache: every step re-runs the teacher-forced pass over the whole prefix and
/// reads its last position (the plain path the cached decoder must equal).
struct Recompute<'a>(&'a Transformer);

struct RecomputeDecoding<'a> {
    model: &'a Transformer,
    src: Vec<Vec<u32>>,
    prefixes: Vec<Vec<u32>>,
}

impl Seq2Seq for Recompute<'_> {
    fn params(&self) -> &Params {
        self.0.params()
    }
    fn logits(&self, batch: &Batch, dropout: Option<&mut Rng>) -> Var {
        self.0.logits(batch, dropout)
    }
    fn tgt_vocab(&self) -> usize {
        self.0.tgt_vocab()
    }
    fn begin<'a>(
        &'a self,
        src: &[u32],
        src_len: &[usize],
        src_max: usize,
    ) -> Box<dyn Decoding + 'a> {
        Box::new(RecomputeDecoding {
            model: self.0,
            src: src_len
                .iter()
                .enumerate()
                .map(|(r, &l)| src[r * src_max..r * src_max + l].to_vec())
                .collect(),
            prefixes: vec![Vec::new(); src_len.len()],
        })
    }
}

impl Decoding for RecomputeDecoding<'_> {
    fn step(&mut self, prev: &[u32]) -> StepOutput {
        let v = self.model.tgt_vocab();
        let (mut logits, mut weights) = (Vec::new(), Vec::new());
        let s = self.src.iter().map(Vec::len).max().unwrap_or(0);
        for (r, &p) in prev.iter().enumerate() {
            self.prefixes[r].push(p); // <s> y₁ … y_t
            let tgt = &self.prefixes[r];
            let (t, len) = (tgt.len(), self.src[r].len());
            let mut src = self.src[r].clone();
            src.resize(s, 0);
            let f = self
                .model
                .forward(&src, &[len], s, tgt, t, None, true)
                .expect("runs");
            logits.extend_from_slice(&f.logits.value().data()[(t - 1) * v..t * v]);
            // Last layer's cross-attention [1, H, T, S] at the last position, mean over heads.
            let c = f.cross.last().expect("layers").to_tensor();
            let h = c.dim(1);
            let mut w = vec![0.0; s];
            for head in 0..h {
                let row = &c.data()[(head * t + t - 1) * s..(head * t + t) * s];
                for (a, &x) in w.iter_mut().zip(row) {
                    *a += x / h as f32;
                }
            }
            weights.extend(w);
        }
        let rows = prev.len();
        StepOutput {
            logits: Tensor::from_vec(logits, &[rows, v]),
            weights: Some(Tensor::from_vec(weights, &[rows, s])),
            scores: None,
        }
    }
    fn select(&mut self, rows: &[usize]) {
        self.src = rows.iter().map(|&r| self.src[r].clone()).collect();
        self.prefixes = rows.iter().map(|&r| self.prefixes[r].clone()).collect();
    }
}

fn assert_same_hypotheses(a: &[Hypothesis], b: &[Hypothesis], what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.ids, y.ids, "{what}: ids");
        assert!(
            (x.log_prob - y.log_prob).abs() < 1e-4,
            "{what}: {} vs {}",
            x.log_prob,
            y.log_prob
        );
        assert_eq!(
            x.attention.len(),
            y.attention.len(),
            "{what}: attention steps"
        );
        for (p, q) in x.attention.iter().zip(&y.attention) {
            for (u, w) in p.iter().zip(q) {
                assert!((u - w).abs() < 1e-5, "{what}: attention {u} vs {w}");
            }
        }
    }
}

#[test]
fn cached_decoding_equals_recomputing_the_prefix() {
    let b = batch();
    for (norm, pos, shared) in [
        (NormPlacement::Pre, PositionKind::Sinusoidal, false),
        (NormPlacement::Post, PositionKind::Learned, true),
    ] {
        let model = tiny(norm, pos, shared, 3);
        let what = format!("{norm:?}/{pos:?}");
        let cached = greedy(&model, &b.src, &b.src_len, b.src_max, 9);
        let plain = greedy(&Recompute(&model), &b.src, &b.src_len, b.src_max, 9);
        assert!(
            cached.iter().any(|h| h.ids.len() > 2),
            "{what}: decodes something"
        );
        assert_same_hypotheses(&cached, &plain, &format!("{what} greedy"));
        let cfg = BeamConfig {
            beam: 3,
            alpha: 0.6,
            max_len: 9,
            n_best: 3,
        };
        let cached = beam_search(&model, &b.src, &b.src_len, b.src_max, cfg);
        let plain = beam_search(&Recompute(&model), &b.src, &b.src_len, b.src_max, cfg);
        for (c, p) in cached.iter().zip(&plain) {
            assert_same_hypotheses(c, p, &format!("{what} beam"));
        }
    }
}

#[test]
fn teacher_forcing_equals_incremental_steps() {
    let b = batch();
    let model = tiny(NormPlacement::Pre, PositionKind::Sinusoidal, false, 11);
    let logits = tensor::no_grad(|| model.logits(&b, None)).to_tensor(); // [B·T, V]
    let v = model.tgt_vocab();
    let mut dec = model.begin(&b.src, &b.src_len, b.src_max);
    for t in 0..b.tgt_max {
        let prev: Vec<u32> = (0..b.batch_size)
            .map(|r| b.tgt_in[r * b.tgt_max + t])
            .collect();
        let step = tensor::no_grad(|| dec.step(&prev));
        for r in 0..b.batch_size {
            let tf = &logits.data()[(r * b.tgt_max + t) * v..(r * b.tgt_max + t + 1) * v];
            let inc = &step.logits.data()[r * v..(r + 1) * v];
            for (x, y) in tf.iter().zip(inc) {
                assert!((x - y).abs() < 1e-4, "step {t} row {r}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn beam_of_one_is_greedy() {
    let b = batch();
    let model = tiny(NormPlacement::Post, PositionKind::Sinusoidal, false, 5);
    let g = greedy(&model, &b.src, &b.src_len, b.src_max, 10);
    let cfg = BeamConfig {
        beam: 1,
        alpha: 0.0,
        max_len: 10,
        n_best: 1,
    };
    let beam: Vec<Hypothesis> = beam_search(&model, &b.src, &b.src_len, b.src_max, cfg)
        .into_iter()
        .map(|mut n| n.swap_remove(0))
        .collect();
    for (x, y) in g.iter().zip(&beam) {
        assert_eq!(x.ids, y.ids);
        assert!((x.log_prob - y.log_prob).abs() < 1e-4);
    }
}

#[test]
fn decoder_position_t_does_not_see_later_targets() {
    let model = tiny(NormPlacement::Pre, PositionKind::Learned, false, 7);
    let src = [4u32, 5, 6, 7];
    let a = [BOS, 4, 5, 6, 7, 8];
    let v = model.tgt_vocab();
    // Both attention paths: plain (weights returned) and fused.
    for (weights, change) in [true, false]
        .into_iter()
        .flat_map(|w| (1..6).map(move |c| (w, c)))
    {
        let logits = |tgt: &[u32]| {
            tensor::no_grad(|| model.forward(&src, &[4], 4, tgt, 6, None, weights))
                .expect("runs")
                .logits
                .to_tensor()
        };
        let base = logits(&a);
        let mut b = a;
        for x in &mut b[change..] {
            *x += 4; // different tokens from position `change` on (4..=8 → 8..=12)
        }
        let other = logits(&b);
        for t in 0..6 {
            let d = base.data()[t * v..(t + 1) * v]
                .iter()
                .zip(&other.data()[t * v..(t + 1) * v])
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            if t < change {
                assert_eq!(
                    d, 0.0,
                    "position {t} changed when tokens from {change} on did (weights {weights})"
                );
            } else {
                assert!(d > 1e-4, "position {t} ignores its own input");
            }
        }
    }
    // The decoder self-attention weights are zero above the diagonal.
    let maps = model.attention_maps(&src, &[4], 4, &a, 6).expect("runs");
    for w in &maps.decoder_self {
        assert_eq!(w.shape(), [1, 2, 6, 6]);
        for (k, &x) in w.data().iter().enumerate() {
            let (i, j) = ((k / 6) % 6, k % 6);
            if j > i {
                assert_eq!(x, 0.0);
            }
        }
    }
}

#[test]
fn source_padding_changes_no_output() {
    let model = tiny(NormPlacement::Post, PositionKind::Sinusoidal, false, 9);
    let tgt = [BOS, 7, 8];
    let short = model
        .forward(&[4, 5, 6], &[3], 3, &tgt, 3, None, true)
        .expect("runs");
    for (pad, fill) in [(2usize, 0u32), (4, 9)] {
        let mut src = vec![4u32, 5, 6];
        src.extend(std::iter::repeat_n(fill, pad));
        let s = src.len();
        // Both attention paths: plain (weights returned) and fused.
        for weights in [true, false] {
            let long = model
                .forward(&src, &[3], s, &tgt, 3, None, weights)
                .expect("runs");
            assert_tensors_close(
                &long.logits.to_tensor(),
                &short.logits.to_tensor(),
                1e-5,
                &format!("logits with padding (weights {weights})"),
            );
        }
        let maps = model.attention_maps(&src, &[3], s, &tgt, 3).expect("runs");
        for w in maps.cross.iter().chain(&maps.encoder_self) {
            for (k, &x) in w.data().iter().enumerate() {
                if k % s >= 3 {
                    assert_eq!(x, 0.0, "weight on a padded source position");
                }
            }
        }
    }
}

#[test]
fn attention_maps_have_every_layer_and_head() {
    let b = batch();
    let model = tiny(NormPlacement::Pre, PositionKind::Sinusoidal, false, 2);
    let maps = model
        .attention_maps(&b.src, &b.src_len, b.src_max, &b.tgt_in, b.tgt_max)
        .expect("runs");
    let (bs, s, t) = (b.batch_size, b.src_max, b.tgt_max);
    assert_eq!(maps.encoder_self.len(), 2);
    assert_eq!(maps.decoder_self.len(), 2);
    assert_eq!(maps.cross.len(), 2);
    for (w, shape) in maps
        .encoder_self
        .iter()
        .map(|w| (w, [bs, 2, s, s]))
        .chain(maps.decoder_self.iter().map(|w| (w, [bs, 2, t, t])))
        .chain(maps.cross.iter().map(|w| (w, [bs, 2, t, s])))
    {
        assert_eq!(w.shape(), shape);
        let n = shape[3];
        for row in w.data().chunks(n) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "rows sum to 1");
        }
    }
}

#[test]
fn gradients_pass_finite_differences() {
    let b = batch();
    for (norm, pos, shared) in [
        (NormPlacement::Pre, PositionKind::Learned, false),
        (NormPlacement::Post, PositionKind::Sinusoidal, true),
    ] {
        let model = tiny(norm, pos, shared, 4);
        let loss = || {
            model
                .logits(&b, None)
                .cross_entropy(&b.tgt_out, Some(0), 0.1)
        };
        model.params().zero_grad();
        loss().backward();
        let h = 1e-2f32;
        for (name, p) in model.params().iter() {
            let g = p.grad().unwrap_or_else(|| panic!("{name} gets a gradient"));
            let n = p.value().numel();
            for j in [0, n / 3, n / 2 + 1, n - 1] {
                let orig = p.value().data()[j];
                p.value_mut().data_mut()[j] = orig + h;
                let up = tensor::no_grad(|| loss().item()) as f64;
                p.value_mut().data_mut()[j] = orig - h;
                let down = tensor::no_grad(|| loss().item()) as f64;
                p.value_mut().data_mut()[j] = orig;
                let numeric = (up - down) / (2.0 * h as f64);
                let a = g.data()[j] as f64;
                let err = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
                assert!(
                    err < 2e-2,
                    "{norm:?} {name}[{j}]: analytic {a} vs numeric {numeric}"
                );
            }
        }
    }
}

#[test]
fn parameters_are_named_like_pytorch_and_shared_when_asked() {
    let model = tiny(NormPlacement::Pre, PositionKind::Sinusoidal, false, 1);
    let shape = |n: &str| model.params().get(n).map(Var::shape);
    assert_eq!(shape("src_emb.weight"), Some(vec![13, 8]));
    assert_eq!(shape("tgt_emb.weight"), Some(vec![13, 8]));
    assert_eq!(
        shape("transformer.encoder.layers.1.self_attn.in_proj_weight"),
        Some(vec![24, 8])
    );
    assert_eq!(
        shape("transformer.decoder.layers.0.multihead_attn.out_proj.weight"),
        Some(vec![8, 8])
    );
    assert_eq!(
        shape("transformer.decoder.layers.1.linear1.weight"),
        Some(vec![12, 8])
    );
    assert_eq!(
        shape("transformer.decoder.layers.1.norm3.bias"),
        Some(vec![8])
    );
    assert_eq!(shape("transformer.encoder.norm.weight"), Some(vec![8]));
    assert_eq!(shape("out_proj.weight"), Some(vec![13, 8]));
    let shared = tiny(NormPlacement::Pre, PositionKind::Learned, true, 1);
    let has = |n: &str| shared.params().get(n).is_some();
    assert!(has("src_emb.weight") && has("out_proj.bias") && has("pos_emb.weight"));
    assert!(!has("tgt_emb.weight") && !has("out_proj.weight"));
    assert_eq!(
        shared.params().count() + 2 * 13 * 8,
        model.params().count() + 32 * 8,
        "shared: no target table, no output matrix; learned: a position table"
    );
}

#[test]
fn built_from_config_and_rejects_bad_choices() {
    let sets = |extra: &[&str]| {
        let mut s: Vec<String> = [
            "data.joint_vocab=false",
            "model.transformer.d_model=8",
            "model.transformer.heads=2",
            "model.transformer.ff_size=16",
            "model.transformer.shared_embeddings=false",
            "model.transformer.tie_output=false",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        s.extend(extra.iter().map(|x| x.to_string()));
        s
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/en-fr-transformer.toml");
    let config = Config::load(Some(&path), &sets(&[])).expect("valid");
    let model = attend::models::build(&config, 11, 12, 0).expect("builds");
    assert_eq!(model.tgt_vocab(), 12);
    for bad in [
        "model.transformer.heads=3",
        "model.transformer.activation=\"tanh\"",
        "model.transformer.norm=\"sandwich\"",
        "model.transformer.positions=\"rotary\"",
        "model.transformer.attention_dropout=1.5",
        "model.transformer.shared_embeddings=true",
    ] {
        let err = Config::load(Some(&path), &sets(&[bad]))
            .expect_err(bad)
            .to_string();
        assert!(err.contains("model."), "{bad}: {err}");
    }
}

/// Positions past the table (`max_positions` = 32 here) are an error naming the length and the
/// table size, for sinusoidal and learned positions alike; translation refuses such a source
/// before decoding and stops an output at the table's end, without panicking.
#[test]
fn positions_past_the_table_are_an_error_naming_both_lengths() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/reverse-transformer.toml");
    let mut config = Config::load(Some(&path), &[]).expect("the bundled config loads");
    // An output limit (3 · 20 + 5 = 65 tokens for 3 source tokens) past the table.
    config.search.max_len_a = 20.0;
    for positions in [PositionKind::Sinusoidal, PositionKind::Learned] {
        let model = tiny(NormPlacement::Pre, positions, false, 3);
        let long = vec![4u32; 33];
        for want_weights in [false, true] {
            let err = model
                .encode(&long, &[33], 33, None, want_weights)
                .err()
                .expect("33 positions do not fit a table of 32");
            assert!(
                matches!(
                    err,
                    TransformerError::TooLong {
                        needed: 33,
                        max_positions: 32,
                        ..
                    }
                ),
                "{err}"
            );
            let message = err.to_string();
            assert!(
                message.contains("33") && message.contains("32"),
                "{message}"
            );
        }
        let tgt_in = vec![BOS; 33];
        let err = model
            .forward(&long[..5], &[5], 5, &tgt_in, 33, None, false)
            .err()
            .expect("a target of 33 positions does not fit");
        assert!(err.to_string().contains("target"), "{err}");
        assert!(model.check_source_len(32).is_ok());
        assert!(check_sources(&model, &[vec![4, 5, 6], long]).is_err());
        for beam in [1, 3] {
            let hyps = translate_ids(&model, &[vec![4, 5, 6]], &config, beam, 0.0);
            assert!(hyps[0].ids.len() <= 32, "{positions:?}, beam {beam}");
        }
    }
}

#[test]
fn bundled_transformer_configs_parse_and_build() {
    for name in ["reverse-transformer", "en-fr-transformer"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(format!("{name}.toml"));
        let config = Config::load(Some(&path), &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.model.kind(), ModelKind::Transformer);
        let model = attend::models::build(&config, 60, 60, 0).expect("builds");
        assert_eq!(model.tgt_vocab(), 60);
    }
}

/// Training through the fused attention kernel (no weights asked for) gives the same parameters
/// after a few gradient steps as training through the plain layer ops, with dropout active
/// everywhere — on the attention weights too, drawn inside the kernel — and drawing the same
/// masks; and the teacher-forced logits agree.
/// (Plain gradient descent: Adam would turn the rounding noise of gradients that are exactly zero in
/// theory, such as the key bias's, into full-size steps of either sign.)
#[test]
fn fused_and_plain_attention_train_alike() {
    let b = batch();
    let spec = TransformerSpec {
        dropout: 0.1,
        attention_dropout: 0.2,
        ..tiny_spec(NormPlacement::Pre, PositionKind::Sinusoidal, false)
    };
    let train = |weights: bool| {
        let model = Transformer::new(spec.clone(), 17).expect("builds");
        let mut losses = Vec::new();
        for step in 0..4 {
            let mut rng = Rng::new(1000 + step);
            let f = model
                .forward(
                    &b.src,
                    &b.src_len,
                    b.src_max,
                    &b.tgt_in,
                    b.tgt_max,
                    Some(&mut rng),
                    weights,
                )
                .expect("forward");
            assert_eq!(
                f.cross.is_empty(),
                !weights,
                "weights returned only when asked"
            );
            let loss = f
                .logits
                .reshape(&[b.batch_size * b.tgt_max, 13])
                .cross_entropy(&b.tgt_out, Some(0), 0.1);
            model.params().zero_grad();
            loss.backward();
            for (_, p) in model.params().iter() {
                let g = p.grad().expect("every parameter gets a gradient");
                p.value_mut().add_assign(&g.map(|x| -0.5 * x));
            }
            losses.push(loss.item());
        }
        let eval = tensor::no_grad(|| {
            model
                .forward(
                    &b.src, &b.src_len, b.src_max, &b.tgt_in, b.tgt_max, None, weights,
                )
                .expect("forward")
                .logits
                .to_tensor()
        });
        let params: Vec<Tensor> = model.params().iter().map(|(_, p)| p.to_tensor()).collect();
        (losses, eval, params)
    };
    let (plain_losses, plain_eval, plain_params) = train(true);
    let (fused_losses, fused_eval, fused_params) = train(false);
    for (p, f) in plain_losses.iter().zip(&fused_losses) {
        assert!(
            (p - f).abs() < 1e-5,
            "losses {plain_losses:?} vs {fused_losses:?}"
        );
    }
    assert_tensors_close(&fused_eval, &plain_eval, 1e-4, "logits after training");
    for (i, (f, p)) in fused_params.iter().zip(&plain_params).enumerate() {
        assert_tensors_close(f, p, 1e-4, &format!("parameter {i} after 4 steps"));
    }
}
