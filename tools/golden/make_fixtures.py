#!/usr/bin/env python3
"""Golden values from PyTorch for attend's tests, written as safetensors fixtures.

Regenerate (needs the peers venv, see /work/shared/peers/setup.sh; the Rust tests never need torch):

    /opt/peers/bin/python tools/golden/make_fixtures.py [--out crates/attend/tests/fixtures/torch]
    /opt/peers/bin/python tools/golden/check_fixtures.py   # reload + independent numpy checks

How the numbers are made (the same for every file):

* Everything is computed by PyTorch in **float64** (modules built with dtype=float64, one CPU thread).
* Every input and parameter is first rounded to float32 and back, so the stored float32 inputs are
  exactly the values the float64 reference consumed; every output and gradient is then rounded once to
  float32 when stored.  A float32 implementation should match to ~1e-5 relative, not bit for bit.
* Seeded (torch.manual_seed per case) and deterministic: running the script twice writes identical bytes.
* All tensors are stored as **F32**, including token ids, lengths, targets and masks (small integers
  are exact in f32).  Masks are 0/1 with **1 = masked out** (padding, or a blocked future position).
* Gradients: for a case with outputs o_k the loss is L = sum_k sum(o_k * grad_out.<o_k>), where the
  grad_out tensors are fixed random N(0,1) tensors also stored; `grad.<name>` = dL/d<name> for every
  input and parameter.  Attention cases store a second set `grad_w.<name>` of dL_w/d<name> for
  L_w = sum(weights * grad_out.weights) (the attention weights alone).
* Several cases in one file are told apart by a prefix (`cross.`, `self.`, `dot.`, `general.`, ...).
* The config of each file (sizes, options, conventions) is in the safetensors `__metadata__`
  under the key "config" (a JSON string).

The safetensors format is written by hand (8-byte little-endian header length, JSON header, raw
little-endian data), so only torch + numpy are needed; check_fixtures.py reloads with the
`safetensors` package when it is importable and with the same small reader otherwise.
"""
import argparse
import json
import math
import os
import struct
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

DT = torch.float64
SEED = 20261123
PAD, BOS, EOS, UNK = 0, 1, 2, 3


# ----------------------------------------------------------------- writing
def write_safetensors(path, tensors, config):
    """Writes {name: float32 array} in the safetensors format with config in __metadata__."""
    header = {"__metadata__": {"config": json.dumps(config, sort_keys=True)}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)  # pad the header so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


def f32(t):
    """float64 torch tensor -> float32 numpy array (rounded once)."""
    return t.detach().to(torch.float32).numpy()


def exact(t):
    """Rounds a float64 tensor to the nearest float32 and back, so the stored f32 value is exact."""
    return t.to(torch.float32).to(DT)


def randn(*shape, scale=1.0):
    return exact(torch.randn(*shape, dtype=DT) * scale)


def round_params(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(exact(p))


def perturb_params(module, std=0.1):
    """Makes default-constant parameters non-trivial: LayerNorm weights 1+N(0,std²), all other 1-D
    parameters (biases, zero by default in nn.MultiheadAttention / nn.Transformer) N(0,std²)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1:
                if "norm" in name and name.endswith("weight"):
                    p.copy_(1.0 + std * torch.randn_like(p))
                else:
                    p.copy_(std * torch.randn_like(p))


class Case:
    """Collects the tensors of one case under an optional prefix."""

    def __init__(self, prefix=""):
        self.prefix = prefix
        self.tensors = {}

    def put(self, name, t):
        self.tensors[self.prefix + name] = f32(t) if torch.is_tensor(t) else np.asarray(t, np.float32)

    def backward(self, outputs, leaves, tag="grad", gname="grad_out"):
        """L = sum_k sum(o_k * G_k) with fresh random G_k; stores G_k and dL/dleaf for every leaf."""
        for t in leaves.values():
            t.grad = None
        loss = 0.0
        for oname, o in outputs.items():
            g = randn(*o.shape)
            self.put(f"{gname}.{oname}", g)
            loss = loss + (o * g).sum()
        loss.backward(retain_graph=True)  # attention cases differentiate the same graph twice
        for lname, t in leaves.items():
            # a leaf the loss does not depend on (out_proj for the attention weights) has gradient 0
            self.put(f"{tag}.{lname}", t.grad if t.grad is not None else torch.zeros_like(t))


def leaves_of(module, inputs):
    d = dict(inputs)
    d.update(dict(module.named_parameters()))
    return d


def lengths_mask(lengths, t):
    """[B, T] f64, 1 where position >= length (padding)."""
    return (torch.arange(t).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)).to(DT)


# ----------------------------------------------------------------- recurrent
def rnn_packed(kind):
    """nn.GRU / nn.LSTM, 2 layers, bidirectional, batch_first, over a padded batch via packing."""
    torch.manual_seed(SEED + (1 if kind == "gru" else 2))
    b, t, n_in, hid, layers = 3, 7, 5, 8, 2
    lengths = [7, 4, 6]
    cls = nn.GRU if kind == "gru" else nn.LSTM
    rnn = cls(n_in, hid, num_layers=layers, bidirectional=True, batch_first=True, dtype=DT)
    round_params(rnn)
    pad = lengths_mask(lengths, t)
    x = randn(b, t, n_in) * (1 - pad).unsqueeze(2)  # padded steps hold zeros (they are never read)
    h0 = randn(2 * layers, b, hid, scale=0.5)
    inputs = {"x": x.requires_grad_(), "h0": h0.requires_grad_()}
    if kind == "lstm":
        inputs["c0"] = randn(2 * layers, b, hid, scale=0.5).requires_grad_()
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    hx = inputs["h0"] if kind == "gru" else (inputs["h0"], inputs["c0"])
    out_p, hn = rnn(packed, hx)
    out, _ = pad_packed_sequence(out_p, batch_first=True, total_length=t)
    outputs = {"output": out}
    if kind == "gru":
        outputs["h_n"] = hn
    else:
        outputs["h_n"], outputs["c_n"] = hn
    c = Case()
    for k, v in inputs.items():
        c.put(k, v)
    c.put("lengths", torch.tensor(lengths, dtype=DT))
    for k, v in rnn.named_parameters():
        c.put(k, v)
    for k, v in outputs.items():
        c.put(k, v)
    c.backward(outputs, leaves_of(rnn, inputs))
    gates = "r,z,n" if kind == "gru" else "i,f,g,o"
    config = {
        "module": f"nn.{cls.__name__}(input_size={n_in}, hidden_size={hid}, num_layers={layers}, "
                  "bidirectional=True, batch_first=True)",
        "batch": b, "max_len": t, "input_size": n_in, "hidden_size": hid, "num_layers": layers,
        "bidirectional": True, "lengths": lengths, "gate_order": gates,
        "packing": "pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False); "
                   "pad_packed_sequence(..., batch_first=True, total_length=max_len)",
        "output": "[B,T,2H] = [fwd ; bwd] per step; exactly 0 at t >= length",
        "h_n_order": "index 2*layer + direction (0 fwd, 1 bwd): l0 fwd, l0 bwd, l1 fwd, l1 bwd",
        "reverse_direction": "starts at t = length-1 of each sequence from h0[2*layer+1]",
        "loss": "sum(output*grad_out.output) + sum(h_n*grad_out.h_n)"
                + (" + sum(c_n*grad_out.c_n)" if kind == "lstm" else ""),
        "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return c.tensors, config


def rnn_cell(kind):
    torch.manual_seed(SEED + (3 if kind == "gru" else 4))
    b, n_in, hid = 3, 5, 8
    cls = nn.GRUCell if kind == "gru" else nn.LSTMCell
    cell = cls(n_in, hid, dtype=DT)
    round_params(cell)
    inputs = {"x": randn(b, n_in).requires_grad_(), "h": randn(b, hid, scale=0.5).requires_grad_()}
    if kind == "gru":
        outputs = {"h_out": cell(inputs["x"], inputs["h"])}
    else:
        inputs["c"] = randn(b, hid, scale=0.5).requires_grad_()
        h1, c1 = cell(inputs["x"], (inputs["h"], inputs["c"]))
        outputs = {"h_out": h1, "c_out": c1}
    c = Case()
    for k, v in list(inputs.items()) + list(cell.named_parameters()) + list(outputs.items()):
        c.put(k, v)
    c.backward(outputs, leaves_of(cell, inputs))
    config = {
        "module": f"nn.{cls.__name__}(input_size={n_in}, hidden_size={hid})",
        "batch": b, "input_size": n_in, "hidden_size": hid,
        "gate_order": "r,z,n" if kind == "gru" else "i,f,g,o",
        "loss": "sum(h_out*grad_out.h_out)" + (" + sum(c_out*grad_out.c_out)" if kind == "lstm" else ""),
        "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return c.tensors, config


# ----------------------------------------------------------------- layer norm
def layernorm():
    torch.manual_seed(SEED + 5)
    b, t, d = 3, 5, 12
    ln = nn.LayerNorm(d, eps=1e-5, dtype=DT)
    with torch.no_grad():
        ln.weight.copy_(1.0 + 0.3 * torch.randn(d, dtype=DT))
        ln.bias.copy_(0.3 * torch.randn(d, dtype=DT))
    round_params(ln)
    x = randn(b, t, d, scale=2.0) + 0.5
    inputs = {"x": x.requires_grad_()}
    y = ln(inputs["x"])
    c = Case()
    for k, v in list(inputs.items()) + list(ln.named_parameters()) + [("y", y)]:
        c.put(k, v)
    c.backward({"y": y}, leaves_of(ln, inputs))
    config = {
        "module": f"nn.LayerNorm({d}, eps=1e-5)", "shape": [b, t, d], "eps": 1e-5,
        "formula": "y = (x - mean) / sqrt(var_biased + eps) * weight + bias over the last dim",
        "loss": "sum(y*grad_out.y)", "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return c.tensors, config


# ----------------------------------------------------------------- multi-head attention
def mha():
    e, nh = 16, 4
    tensors, cases = {}, {}
    # cross-attention: query [B,T,E] attends over memory [B,S,E] (key = value = memory), padded keys
    torch.manual_seed(SEED + 6)
    b, t, s, lengths = 3, 4, 6, [6, 3, 5]
    m = nn.MultiheadAttention(e, nh, batch_first=True, dtype=DT)
    perturb_params(m)
    round_params(m)
    kpm = lengths_mask(lengths, s)
    inputs = {"query": randn(b, t, e).requires_grad_(), "memory": randn(b, s, e).requires_grad_()}
    c = Case("cross.")
    run_mha(c, m, inputs, inputs["query"], inputs["memory"], kpm.bool(), None)
    c.put("key_padding_mask", kpm)
    c.put("lengths", torch.tensor(lengths, dtype=DT))
    tensors.update(c.tensors)
    cases["cross"] = {"batch": b, "tgt_len": t, "src_len": s, "lengths": lengths,
                      "call": "m(query, memory, memory, key_padding_mask=key_padding_mask.bool())",
                      "key_padding_mask": "[B,S], 1 = padding (torch bool True), weights there are 0"}
    # self-attention with a causal mask
    torch.manual_seed(SEED + 7)
    b, t = 2, 5
    m = nn.MultiheadAttention(e, nh, batch_first=True, dtype=DT)
    perturb_params(m)
    round_params(m)
    causal = torch.triu(torch.ones(t, t, dtype=DT), diagonal=1)
    inputs = {"x": randn(b, t, e).requires_grad_()}
    c = Case("self.")
    run_mha(c, m, inputs, inputs["x"], inputs["x"], None, causal.bool())
    c.put("attn_mask", causal)
    tensors.update(c.tensors)
    cases["self"] = {"batch": b, "len": t,
                     "call": "m(x, x, x, attn_mask=attn_mask.bool())",
                     "attn_mask": "[T,T], 1 = blocked (j > i, torch bool True), weights there are 0"}
    config = {
        "module": f"nn.MultiheadAttention(embed_dim={e}, num_heads={nh}, batch_first=True)",
        "embed_dim": e, "num_heads": nh, "head_dim": e // nh, "cases": cases,
        "in_proj_weight": "[3E,E] rows = [W_q; W_k; W_v]; in_proj_bias [3E] likewise",
        "scores": "softmax((x W_q^T + b_q)(m W_k^T + b_k)^T / sqrt(head_dim) with masked scores -inf)",
        "outputs": "attn_output [B,T,E]; attn_weights [B,T,S] (average_attn_weights=True, mean over heads); "
                   "attn_weights_per_head [B,H,T,S] (average_attn_weights=False)",
        "loss": "grad.*: sum(attn_output*grad_out.attn_output); "
                "grad_w.*: sum(attn_weights_per_head*grad_out.attn_weights_per_head)",
        "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return tensors, config


def run_mha(c, m, inputs, q, kv, key_padding_mask, attn_mask):
    out, w_avg = m(q, kv, kv, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                   need_weights=True, average_attn_weights=True)
    out2, w_heads = m(q, kv, kv, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                      need_weights=True, average_attn_weights=False)
    assert torch.equal(out, out2)
    for k, v in list(inputs.items()) + list(m.named_parameters()):
        c.put(k, v)
    c.put("attn_output", out)
    c.put("attn_weights", w_avg)
    c.put("attn_weights_per_head", w_heads)
    leaves = leaves_of(m, inputs)
    c.backward({"attn_output": out}, leaves)
    c.backward({"attn_weights_per_head": w_heads}, leaves, tag="grad_w")


# ----------------------------------------------------------------- RNN attention
class AdditiveAttention(nn.Module):
    """Bahdanau attention exactly as /work/shared/peers/seq2seq_bench.py, plus the padding mask."""

    def __init__(self, query_dim, key_dim, attn_dim):
        super().__init__()
        self.w_q = nn.Linear(query_dim, attn_dim, bias=False, dtype=DT)
        self.w_k = nn.Linear(key_dim, attn_dim, bias=True, dtype=DT)
        self.v = nn.Linear(attn_dim, 1, bias=False, dtype=DT)

    def forward(self, query, keys, mask):
        # query [B,H], keys = annotations h [B,S,2H], mask [B,S] (1 = pad)
        scores = self.v(torch.tanh(self.w_q(query).unsqueeze(1) + self.w_k(keys))).squeeze(2)  # [B,S]
        scores = scores.masked_fill(mask.bool(), float("-inf"))
        weights = torch.softmax(scores, dim=1)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # [B,2H]
        return context, weights


def attention_case(c, module, inputs, mask):
    context, weights = module(inputs["query"], inputs["keys"], mask)
    for k, v in list(inputs.items()) + list(module.named_parameters()):
        c.put(k, v)
    c.put("mask", mask)
    c.put("context", context)
    c.put("weights", weights)
    leaves = leaves_of(module, inputs)
    c.backward({"context": context}, leaves)
    c.backward({"weights": weights}, leaves, tag="grad_w")


def additive_step():
    torch.manual_seed(SEED + 8)
    b, s, hid, a = 3, 6, 8, 10
    lengths = [6, 2, 4]
    m = AdditiveAttention(hid, 2 * hid, a)
    round_params(m)
    mask = lengths_mask(lengths, s)
    inputs = {"query": randn(b, hid).requires_grad_(), "keys": randn(b, s, 2 * hid).requires_grad_()}
    c = Case()
    attention_case(c, m, inputs, mask)
    c.put("lengths", torch.tensor(lengths, dtype=DT))
    config = {
        "definition": "seq2seq_bench.py AdditiveAttention: e_j = v . tanh(W_q s + W_k h_j + b_k); "
                      "e_j = -inf where mask_j = 1; a = softmax_j(e); context = sum_j a_j h_j",
        "batch": b, "src_len": s, "query_dim": hid, "key_dim": 2 * hid, "attn_dim": a, "lengths": lengths,
        "names": "query = s [B,H]; keys = annotations h [B,S,2H] (also the values); "
                 "w_q.weight [A,H]; w_k.weight [A,2H]; w_k.bias [A]; v.weight [1,A]",
        "mask": "[B,S], 1 = padding; weights there are exactly 0",
        "loss": "grad.*: sum(context*grad_out.context); grad_w.*: sum(weights*grad_out.weights)",
        "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return c.tensors, config


class LuongAttention(nn.Module):
    """Luong multiplicative attention: dot e_j = s . h_j; general e_j = (W s) . h_j (W: Linear(H_s, H_h))."""

    def __init__(self, kind, query_dim, key_dim):
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.w = nn.Linear(query_dim, key_dim, bias=False, dtype=DT)

    def forward(self, query, keys, mask):
        q = self.w(query) if self.kind == "general" else query  # [B,H_h]
        scores = torch.bmm(keys, q.unsqueeze(2)).squeeze(2)  # [B,S]
        scores = scores.masked_fill(mask.bool(), float("-inf"))
        weights = torch.softmax(scores, dim=1)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # [B,H_h]
        return context, weights


def luong():
    tensors, cases = {}, {}
    b, s, lengths = 3, 6, [3, 6, 5]
    mask = lengths_mask(lengths, s)
    for i, (kind, hs, hh) in enumerate([("dot", 12, 12), ("general", 8, 12)]):
        torch.manual_seed(SEED + 9 + i)
        m = LuongAttention(kind, hs, hh)
        round_params(m)
        inputs = {"query": randn(b, hs).requires_grad_(), "keys": randn(b, s, hh).requires_grad_()}
        c = Case(kind + ".")
        attention_case(c, m, inputs, mask)
        c.put("lengths", torch.tensor(lengths, dtype=DT))
        tensors.update(c.tensors)
        cases[kind] = {"query_dim": hs, "key_dim": hh,
                       "score": "s . h_j" if kind == "dot" else "(W s) . h_j, w.weight [H_h,H_s] = [12,8]"}
    config = {
        "batch": b, "src_len": s, "lengths": lengths, "cases": cases,
        "definition": "e_j = score(s, h_j); e_j = -inf where mask_j = 1; a = softmax_j(e); "
                      "context = sum_j a_j h_j (no scaling)",
        "names": "query = s [B,H_s]; keys = h [B,S,H_h] (also the values)",
        "mask": "[B,S], 1 = padding; weights there are exactly 0",
        "loss": "grad.*: sum(context*grad_out.context); grad_w.*: sum(weights*grad_out.weights)",
        "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return tensors, config


# ----------------------------------------------------------------- transformer
def sinusoid_table(max_len, d):
    """transformer_bench.py: pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...), p from 0."""
    pos = torch.arange(max_len, dtype=DT).unsqueeze(1)
    i2 = torch.arange(0, d, 2, dtype=DT)
    angle = pos / torch.pow(10000.0, i2 / d)
    pe = torch.zeros(max_len, d, dtype=DT)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return exact(pe)  # the bench stores it as float32


class TransformerNMT(nn.Module):
    """transformer_bench.py's model at toy size, dropout 0, with padding masks."""

    def __init__(self, vocab, d, heads, ff, layers, norm_first, activation, max_len):
        super().__init__()
        self.src_emb = nn.Embedding(vocab, d, dtype=DT)
        self.tgt_emb = nn.Embedding(vocab, d, dtype=DT)
        nn.init.normal_(self.src_emb.weight, 0.0, d ** -0.5)
        nn.init.normal_(self.tgt_emb.weight, 0.0, d ** -0.5)
        self.register_buffer("pos_enc", sinusoid_table(max_len, d), persistent=True)
        self.transformer = nn.Transformer(
            d_model=d, nhead=heads, num_encoder_layers=layers, num_decoder_layers=layers,
            dim_feedforward=ff, dropout=0.0, activation=activation, batch_first=True,
            norm_first=norm_first, layer_norm_eps=1e-5, bias=True, dtype=DT)
        self.out_proj = nn.Linear(d, vocab, dtype=DT)
        self.scale = math.sqrt(d)

    def embed(self, table, tokens):
        return table(tokens) * self.scale + self.pos_enc[: tokens.size(1)]

    def encode(self, src, src_pad):
        return self.transformer.encoder(self.embed(self.src_emb, src), src_key_padding_mask=src_pad)

    def decode(self, tgt_in, memory, src_pad):
        t = tgt_in.size(1)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        h = self.transformer.decoder(self.embed(self.tgt_emb, tgt_in), memory, tgt_mask=causal,
                                     tgt_is_causal=True, memory_key_padding_mask=src_pad)
        return self.out_proj(h)

    def greedy(self, src, src_pad, steps):
        """Exactly `steps` argmax steps from BOS, EOS logit -inf every step (recomputes the prefix)."""
        memory = self.encode(src, src_pad)
        ys = torch.full((src.size(0), 1), BOS, dtype=torch.long)
        margin = float("inf")
        for _ in range(steps):
            logits = self.decode(ys, memory, src_pad)[:, -1].detach().clone()
            logits[:, EOS] = float("-inf")
            top2 = logits.topk(2, dim=1).values
            margin = min(margin, float((top2[:, 0] - top2[:, 1]).min()))
            ys = torch.cat([ys, logits.argmax(dim=1, keepdim=True)], dim=1)
        return ys[:, 1:], margin


def transformer(norm_first, activation, seed):
    torch.manual_seed(seed)
    vocab, d, heads, ff, layers, max_len = 20, 16, 2, 32, 2, 16
    b, s, t, steps = 3, 7, 6, 8
    lengths = [7, 5, 3]
    m = TransformerNMT(vocab, d, heads, ff, layers, norm_first, activation, max_len)
    perturb_params(m)
    round_params(m)
    m.eval()
    src_pad = lengths_mask(lengths, s)
    src = torch.randint(4, vocab, (b, s)) * (1 - src_pad).long()  # <pad> = 0 after each length
    tgt_in = torch.cat([torch.full((b, 1), BOS), torch.randint(4, vocab, (b, t - 1))], dim=1)
    # grad enabled + parameters requiring grad keeps torch on its reference (non-fast) path
    memory = m.encode(src, src_pad.bool())
    logits = m.decode(tgt_in, memory, src_pad.bool())
    assert bool(memory[src_pad.bool()].abs().sum() > 0), "fast path zeroed padded memory rows"
    ids, margin = m.greedy(src, src_pad.bool(), steps)
    assert margin > 1e-3, f"greedy argmax too close to a tie ({margin}); change the seed"
    c = Case()
    for k, v in m.state_dict().items():
        c.put(k, v)
    c.put("src", src.to(DT))
    c.put("src_lengths", torch.tensor(lengths, dtype=DT))
    c.put("src_key_padding_mask", src_pad)
    c.put("tgt_in", tgt_in.to(DT))
    c.put("memory", memory)
    c.put("logits", logits)
    c.put("greedy_ids", ids.to(DT))
    c.backward({"logits": logits}, dict(m.named_parameters()))
    config = {
        "model": "transformer_bench.py TransformerNMT at toy size, eval mode, dropout 0",
        "module": f"nn.Transformer(d_model={d}, nhead={heads}, num_encoder_layers={layers}, "
                  f"num_decoder_layers={layers}, dim_feedforward={ff}, dropout=0.0, "
                  f"activation='{activation}', batch_first=True, norm_first={norm_first}, "
                  "layer_norm_eps=1e-5, bias=True)",
        "vocab": vocab, "d_model": d, "nhead": heads, "dim_feedforward": ff, "layers": layers,
        "norm_first": norm_first, "activation": activation,
        "gelu": "erf form (torch default)" if activation == "gelu" else None,
        "layer_norm_eps": 1e-5, "batch": b, "src_len": s, "tgt_len": t, "src_lengths": lengths,
        "embedding": "x = emb(ids) * sqrt(d_model) + pos_enc[0:L] (sqrt(16) = 4)",
        "pos_enc": "pos_enc[p, 2i] = sin(p / 10000^(2i/d)), pos_enc[p, 2i+1] = cos(p / 10000^(2i/d)), "
                   "p from 0; stored table [max_len, d]",
        "max_len": max_len,
        "special_ids": {"<pad>": PAD, "<s>": BOS, "</s>": EOS, "<unk>": UNK},
        "masks": "src_key_padding_mask [B,S], 1 = pad, used as src_key_padding_mask (encoder self-attn) "
                 "and memory_key_padding_mask (decoder cross-attn); causal mask on the decoder self-attn; "
                 "no target padding",
        "memory": "encoder output incl. final encoder norm; rows at padded source positions are computed "
                  "(not zeroed) and never influence anything downstream",
        "logits": "teacher forced: out_proj(decoder(tgt_emb(tgt_in)...)) [B,T,V]; tgt_in[:,0] = BOS",
        "greedy": f"exactly {steps} argmax steps from BOS, EOS logit set to -inf at every step; "
                  "greedy_ids [B,steps] excludes the BOS",
        "greedy_min_top2_margin": margin,
        "loss": "sum(logits*grad_out.logits); grad.<param> for every trainable parameter (not pos_enc)",
        "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return c.tensors, config


# ----------------------------------------------------------------- ops
def ops():
    torch.manual_seed(SEED + 13)
    tensors = {}
    # log_softmax over the last dim
    c = Case("log_softmax.")
    x = randn(3, 4, 7, scale=2.0).requires_grad_()
    y = F.log_softmax(x, dim=-1)
    c.put("x", x)
    c.put("y", y)
    c.backward({"y": y}, {"x": x})
    tensors.update(c.tensors)
    # gelu, both forms, on the same x
    x = randn(4, 9, scale=2.0)
    for name, approx in [("gelu", "none"), ("gelu_tanh", "tanh")]:
        c = Case(name + ".")
        xi = x.clone().requires_grad_()
        y = F.gelu(xi, approximate=approx)
        c.put("x", xi)
        c.put("y", y)
        c.backward({"y": y}, {"x": xi})
        tensors.update(c.tensors)
    # cross-entropy, with and without label smoothing, ignore_index 0
    n, v = 6, 9
    logits = randn(n, v, scale=1.5)
    target = torch.tensor([3, 0, 8, 1, 0, 5])
    for name, eps in [("cross_entropy", 0.1), ("cross_entropy_plain", 0.0)]:
        c = Case(name + ".")
        z = logits.clone().requires_grad_()
        loss = F.cross_entropy(z, target, ignore_index=0, label_smoothing=eps, reduction="mean")
        logp = F.log_softmax(logits, dim=1)
        keep = target != 0
        manual = ((1 - eps) * -logp[keep, target[keep]] + eps / v * -logp[keep].sum(1)).mean()
        assert abs(loss.item() - manual.item()) < 1e-12
        c.put("logits", z)
        c.put("target", target.to(DT))
        c.put("loss", loss.reshape(1))
        loss.backward()
        c.put("grad.logits", z.grad)
        tensors.update(c.tensors)
    config = {
        "log_softmax": "y = x - logsumexp(x) over the last dim; x [3,4,7]; loss sum(y*grad_out.y)",
        "gelu": "F.gelu(x) (approximate='none', the torch default): y = x * 0.5 * (1 + erf(x / sqrt(2)))",
        "gelu_tanh": "F.gelu(x, approximate='tanh'): y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
        "cross_entropy": "F.cross_entropy(logits [N,C], target [N], ignore_index=0, label_smoothing=0.1, "
                         "reduction='mean'): for i with target_i != 0, l_i = (1-eps)(-log p_i[y_i]) + "
                         "(eps/C) sum_c (-log p_i[c]) (class 0 included in the sum); loss = mean over the "
                         "non-ignored i; grad.logits = dloss/dlogits (rows of ignored targets are 0)",
        "cross_entropy_plain": "the same with label_smoothing=0.0",
        "loss_shape": "loss stored as [1]",
        "dtype_compute": "float64", "dtype_stored": "float32",
    }
    return tensors, config


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "..", "crates", "attend", "tests", "fixtures", "torch")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.normpath(default_out))
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="enable_nested_tensor is True")  # pre-norm: expected
    os.makedirs(args.out, exist_ok=True)
    jobs = {
        "gru": lambda: rnn_packed("gru"),
        "grucell": lambda: rnn_cell("gru"),
        "lstm": lambda: rnn_packed("lstm"),
        "lstmcell": lambda: rnn_cell("lstm"),
        "layernorm": layernorm,
        "mha": mha,
        "additive_step": additive_step,
        "luong": luong,
        "transformer": lambda: transformer(True, "relu", SEED + 11),
        "transformer_postnorm": lambda: transformer(False, "gelu", SEED + 12),
        "ops": ops,
    }
    for name, job in jobs.items():
        tensors, config = job()
        config["torch_version"] = torch.__version__
        config["generator"] = "tools/golden/make_fixtures.py"
        path = os.path.join(args.out, name + ".safetensors")
        write_safetensors(path, tensors, config)
        print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
