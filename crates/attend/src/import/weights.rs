//! The layers of a Marian Transformer, from the parameters as Marian and Hugging Face name them to
//! attend's (`torch.nn.Transformer`'s) names.
//!
//! ```text
//! role                      Marian (model.npz, W [in, out], b [1, n])   Hugging Face (W [out, in])
//! self-attention Q/K/V/out  {stack}_l{l+1}_self_W{q,k,v,o} / _b…        {stack}.layers.{l}.self_attn.{q,k,v,out}_proj
//! its layer norm            …_self_Wo_ln_{scale,bias}                   …self_attn_layer_norm
//! cross-attention           decoder_l{l+1}_context_W… / _b…             decoder.layers.{l}.encoder_attn.…
//! its layer norm            …_context_Wo_ln_{scale,bias}                …encoder_attn_layer_norm
//! feed-forward              …_ffn_W1, _ffn_b1, _ffn_W2, _ffn_b2         …fc1, …fc2
//! its layer norm            …_ffn_ffn_ln_{scale,bias}                   …final_layer_norm
//! ```
//! attend keeps Q, K and V in one `in_proj_weight [3d, d]` (rows Q, then K, then V) and
//! `in_proj_bias [3d]`; its encoder norms are `norm1`, `norm2`, its decoder norms `norm1` (self),
//! `norm2` (cross), `norm3` (feed-forward).

use super::ImportError;
use std::collections::BTreeMap;
use tensor::ops::layout::concat_tensors;
use tensor::Tensor;

/// Encoder or decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    Encoder,
    Decoder,
}

/// A sublayer of a Transformer layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    SelfAttention,
    CrossAttention,
    FeedForward,
}

/// A parameter of a [`Block`]: the attention's projections, the feed-forward's two layers, and the
/// layer norm after the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    Wq,
    Bq,
    Wk,
    Bk,
    Wv,
    Bv,
    Wo,
    Bo,
    W1,
    B1,
    W2,
    B2,
    LnScale,
    LnBias,
}

/// Reads one parameter of a format, returned in attend's layout: matrices `[out, in]`, vectors
/// `[n]`.
pub type Take<'a> = dyn FnMut(Stack, usize, Block, Param) -> Result<Tensor, ImportError> + 'a;

/// Every layer tensor of `encoder_layers` + `decoder_layers` layers under attend's names.
pub fn layers(
    encoder_layers: usize,
    decoder_layers: usize,
    take: &mut Take,
) -> Result<BTreeMap<String, Tensor>, ImportError> {
    // Each layer's post-norm sub-layers in order: the block, its attention's name (none: the
    // feed-forward) and its norm's name, as attend's Transformer names them.
    let encoder = [
        (Block::SelfAttention, Some("self_attn"), "norm1"),
        (Block::FeedForward, None, "norm2"),
    ];
    let decoder = [
        (Block::SelfAttention, Some("self_attn"), "norm1"),
        (Block::CrossAttention, Some("multihead_attn"), "norm2"),
        (Block::FeedForward, None, "norm3"),
    ];
    let stacks = [
        (Stack::Encoder, "encoder", encoder_layers, &encoder[..]),
        (Stack::Decoder, "decoder", decoder_layers, &decoder[..]),
    ];
    let mut out = BTreeMap::new();
    for (s, stack, layers, sublayers) in stacks {
        for l in 0..layers {
            let prefix = format!("transformer.{stack}.layers.{l}");
            for &(b, attention_name, norm_name) in sublayers {
                match attention_name {
                    Some(a) => attention(&mut out, &format!("{prefix}.{a}"), (s, l, b), take)?,
                    None => feed_forward(&mut out, &prefix, s, l, take)?,
                }
                norm(&mut out, &format!("{prefix}.{norm_name}"), (s, l, b), take)?;
            }
        }
    }
    Ok(out)
}

type Out = BTreeMap<String, Tensor>;

fn attention(
    out: &mut Out,
    name: &str,
    (s, l, b): (Stack, usize, Block),
    take: &mut Take,
) -> Result<(), ImportError> {
    let [wq, wk, wv] = [Param::Wq, Param::Wk, Param::Wv].map(|p| take(s, l, b, p));
    let [bq, bk, bv] = [Param::Bq, Param::Bk, Param::Bv].map(|p| take(s, l, b, p));
    out.insert(
        format!("{name}.in_proj_weight"),
        concat_tensors(&[&wq?, &wk?, &wv?], 0),
    );
    out.insert(
        format!("{name}.in_proj_bias"),
        concat_tensors(&[&bq?, &bk?, &bv?], 0),
    );
    out.insert(format!("{name}.out_proj.weight"), take(s, l, b, Param::Wo)?);
    out.insert(format!("{name}.out_proj.bias"), take(s, l, b, Param::Bo)?);
    Ok(())
}

fn norm(
    out: &mut Out,
    name: &str,
    (s, l, b): (Stack, usize, Block),
    take: &mut Take,
) -> Result<(), ImportError> {
    out.insert(format!("{name}.weight"), take(s, l, b, Param::LnScale)?);
    out.insert(format!("{name}.bias"), take(s, l, b, Param::LnBias)?);
    Ok(())
}

fn feed_forward(
    out: &mut Out,
    prefix: &str,
    s: Stack,
    l: usize,
    take: &mut Take,
) -> Result<(), ImportError> {
    let b = Block::FeedForward;
    out.insert(
        format!("{prefix}.linear1.weight"),
        take(s, l, b, Param::W1)?,
    );
    out.insert(format!("{prefix}.linear1.bias"), take(s, l, b, Param::B1)?);
    out.insert(
        format!("{prefix}.linear2.weight"),
        take(s, l, b, Param::W2)?,
    );
    out.insert(format!("{prefix}.linear2.bias"), take(s, l, b, Param::B2)?);
    Ok(())
}
