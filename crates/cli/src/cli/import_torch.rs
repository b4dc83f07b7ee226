//! `attend import-torch --state DICT.safetensors|DICT.npz --config SIZES.toml --out DIR`: turns a
//! PyTorch `nn.Transformer` translation model (state_dict saved as safetensors or as a numpy `.npz`,
//! PyTorch names, float32) into a run directory that `attend translate --model DIR` loads. The exact expectations are in
//! `docs/import-torch.md`.
//!
//! The directory holds `config.toml` (a `model.kind = "transformer"` config built from SIZES),
//! `best.safetensors` (the parameters under attend's names, which are PyTorch's), and two
//! word-level tokenizers whose token for id `i ≥ 4` is `w<i>` (ids 0–3 are `<pad> <s> </s> <unk>`):
//! a PyTorch state_dict carries no vocabulary, so `translate --ids` reads and writes ids, and text
//! mode reads and writes `w<i>` words — the peers' synthetic vocabulary.

use anyhow::{bail, Context, Result};
use attend::attention::position::sinusoidal_table;
use attend::config::{
    Activation, Config, NormPlacement, PositionKind, SearchConfig, TransformerConfig,
};
use attend::data::tokenizer::{Tokenizer, Vocabs, SPECIAL_TOKENS, UNK};
use attend::import::run_dir::imported_config;
use attend::models::transformer::Transformer;
use attend::models::Seq2Seq;
use attend::nn::npz::load_npz;
use attend::nn::params::load_tensors;
use attend::train::checkpoint::{load_model, write_config};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensor::Tensor;

/// Import a PyTorch nn.Transformer state_dict as an attend model directory.
#[derive(clap::Args)]
pub struct ImportTorchArgs {
    /// The state_dict: `.safetensors` or numpy `.npz` (float32, PyTorch parameter names); the
    /// extension picks the reader.
    #[arg(long)]
    state: PathBuf,
    /// The sizes and options of the model (TOML; see docs/import-torch.md).
    #[arg(long)]
    config: PathBuf,
    /// Output run directory (created; existing files in it are replaced).
    #[arg(long)]
    out: PathBuf,
}

/// SIZES.toml: what the state_dict does not say about the model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sizes {
    /// Rows of `src_emb.weight` and `tgt_emb.weight`.
    src_vocab: usize,
    tgt_vocab: usize,
    /// `nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward)`.
    d_model: usize,
    heads: usize,
    encoder_layers: usize,
    decoder_layers: usize,
    ff_size: usize,
    /// `"relu"` or `"gelu"` (erf form).
    #[serde(default = "relu")]
    activation: Activation,
    /// `norm_first` of nn.Transformer.
    norm_first: bool,
    /// `"sinusoidal"` (checked against the formula) or `"learned"` (loaded from `position_tensor`).
    #[serde(default = "sinusoidal")]
    positions: PositionKind,
    /// Rows of the positional table.
    max_positions: usize,
    /// Name of the positional table in the state_dict.
    #[serde(default = "pos_enc")]
    position_tensor: String,
    /// Embeddings multiplied by √d_model.
    #[serde(default = "yes")]
    scale_embeddings: bool,
    /// `tgt_emb` is `src_emb` / `out_proj.weight` is `tgt_emb.weight`.
    #[serde(default)]
    shared_embeddings: bool,
    #[serde(default)]
    tie_output: bool,
    /// Decoding defaults for `attend translate` (beam, alpha, max_len_a, max_len_b).
    #[serde(default)]
    search: Option<SearchConfig>,
}

fn relu() -> Activation {
    Activation::Relu
}
fn sinusoidal() -> PositionKind {
    PositionKind::Sinusoidal
}
fn pos_enc() -> String {
    "pos_enc".into()
}
fn yes() -> bool {
    true
}

/// Largest difference allowed between a stored sinusoidal table and the formula (f32 rounding).
const TABLE_TOLERANCE: f32 = 1e-5;

pub fn run(a: ImportTorchArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let sizes: Sizes = toml::from_str(&text)
        .with_context(|| format!("{}: not a valid SIZES file", a.config.display()))?;
    let config = config_from(&sizes)
        .with_context(|| format!("{}: the sizes do not make a model", a.config.display()))?;
    let mut state = read_state_dict(&a.state)
        .with_context(|| format!("reading the state_dict {}", a.state.display()))?;
    let positions = state.remove(&sizes.position_tensor);
    let model = Transformer::from_config(&config, sizes.src_vocab, sizes.tgt_vocab, 0)?;
    match (sizes.positions, positions) {
        (PositionKind::Learned, Some(table)) => {
            state.insert("pos_emb.weight".into(), table);
        }
        (PositionKind::Learned, None) => bail!(
            "{}: positions = \"learned\" but the state_dict has no `{}`; name the table with position_tensor",
            a.config.display(),
            sizes.position_tensor
        ),
        (_, Some(table)) => check_sinusoidal(&table, &sizes)?,
        (_, None) => {}
    }
    for (name, var) in model.params().iter() {
        let t = state.get(name).with_context(|| {
            format!(
                "{}: missing `{name}`; the sizes or options (layers, shared_embeddings, tie_output) do not match the state_dict",
                a.state.display()
            )
        })?;
        if t.shape() != var.shape().as_slice() {
            bail!(
                "{}: `{name}` has shape {:?}, the sizes give {:?}",
                a.state.display(),
                t.shape(),
                var.shape()
            );
        }
        *var.value_mut() = t.clone();
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    write_config(&a.out, &config)?;
    model.params().save(&a.out.join("best.safetensors"))?;
    Vocabs {
        src: id_tokenizer(sizes.src_vocab, &a.out)?,
        tgt: id_tokenizer(sizes.tgt_vocab, &a.out)?,
    }
    .save(&a.out)?;
    // The directory must load exactly as `attend translate` will load it.
    let loaded = load_model(&a.out, "best")?;
    println!(
        "imported {} parameters ({} tensors) into {}; try: attend translate --model {} --ids",
        loaded.model.params().count(),
        loaded.model.params().len(),
        a.out.display(),
        a.out.display()
    );
    Ok(())
}

/// Reads a state_dict saved as safetensors or as a numpy `.npz` (`np.savez`), chosen by the
/// file's extension.
fn read_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok(load_tensors(path)?),
        Some("npz") => Ok(load_npz(path)?),
        _ => bail!(
            "{}: expected a .safetensors or .npz file (the extension picks the reader)",
            path.display()
        ),
    }
}

/// The `model.kind = "transformer"` config the sizes describe (dropout 0: an imported model is
/// for inference).
fn config_from(s: &Sizes) -> Result<Config> {
    let model = TransformerConfig {
        d_model: s.d_model,
        heads: s.heads,
        ff_size: s.ff_size,
        encoder_layers: s.encoder_layers,
        decoder_layers: s.decoder_layers,
        activation: s.activation,
        norm: if s.norm_first {
            NormPlacement::Pre
        } else {
            NormPlacement::Post
        },
        positions: s.positions,
        max_positions: s.max_positions,
        scale_embeddings: s.scale_embeddings,
        shared_embeddings: s.shared_embeddings,
        tie_output: s.tie_output,
        final_norm: true,
        source_eos: false,
        dropout: 0.0,
        attention_dropout: None,
    };
    let mut c = imported_config("imported-torch", s.src_vocab, s.tgt_vocab, model);
    if let Some(search) = &s.search {
        c.search = search.clone();
    }
    c.validate()?;
    Ok(c)
}

/// Checks a stored sinusoidal table against the formula attend computes (docs/import-torch.md).
fn check_sinusoidal(table: &Tensor, s: &Sizes) -> Result<()> {
    if table.shape() != [s.max_positions, s.d_model] {
        bail!(
            "`{}` has shape {:?}; expected [max_positions, d_model] = [{}, {}]",
            s.position_tensor,
            table.shape(),
            s.max_positions,
            s.d_model
        );
    }
    let expected = sinusoidal_table(s.max_positions, s.d_model);
    let diff = table.max_abs_diff(&expected);
    if diff > TABLE_TOLERANCE {
        bail!(
            "`{}` differs from pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(…), p from 0 (max difference {diff}); \
             a table in another layout (e.g. all sines then all cosines) must be imported with positions = \"learned\"",
            s.position_tensor
        );
    }
    Ok(())
}

/// A word-level tokenizer whose id `i ≥ 4` is the word `w<i>` (ids 0–3 the special tokens), with
/// attend's pre-tokenizer and decoder, written to and read back from `dir` (so it is exactly what
/// [`Tokenizer::load`] accepts).
fn id_tokenizer(vocab: usize, dir: &Path) -> Result<Tokenizer> {
    use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::metaspace::Metaspace;
    use tokenizers::pre_tokenizers::punctuation::Punctuation;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::{AddedToken, SplitDelimiterBehavior};

    if vocab <= SPECIAL_TOKENS.len() {
        bail!("a vocabulary of {vocab} ids has no room beyond the 4 special tokens");
    }
    let words = (0..vocab as u32).map(|i| {
        let word = match SPECIAL_TOKENS.get(i as usize) {
            Some(t) => t.to_string(),
            None => format!("▁w{i}"),
        };
        (word, i)
    });
    let model = WordLevel::builder()
        .vocab(words.collect())
        .unk_token(SPECIAL_TOKENS[UNK as usize].to_string())
        .build()
        .map_err(|e| anyhow::anyhow!("building the id tokenizer: {e}"))?;
    let mut inner = tokenizers::Tokenizer::new(model);
    inner.with_pre_tokenizer(Some(Sequence::new(vec![
        Metaspace::default().into(),
        Punctuation::new(SplitDelimiterBehavior::Isolated).into(),
    ])));
    inner.with_decoder(Some(MetaspaceDecoder::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    inner.add_special_tokens(&specials);
    let path = dir.join(format!("ids-{vocab}.tokenizer.json.tmp"));
    inner
        .save(&path, true)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    let tokenizer = Tokenizer::load(&path);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(tokenizer?)
}
