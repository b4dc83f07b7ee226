#!/usr/bin/env python3
"""Reloads every fixture written by make_fixtures.py and checks it against plain numpy (no torch).

    /opt/peers/bin/python tools/golden/check_fixtures.py [--dir crates/attend/tests/fixtures/torch]

For each file: the forward outputs are recomputed in float64 numpy from the stored float32 inputs and
parameters, following the conventions written in the fixtures' README (gate order, mask semantics,
packing, pre-/post-norm, ...), and compared with the stored outputs; a few entries of the stored
gradients are compared with central finite differences of the documented loss.  Uses the `safetensors`
package to read when it is importable, and a 10-line reader otherwise (both when both are present).
"""
import argparse
import json
import math
import os
import struct

import numpy as np


# ----------------------------------------------------------------- reading
def read_plain(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    out = {}
    for name, h in header.items():
        assert h["dtype"] == "F32", name
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(h["shape"])
    return out, json.loads(meta["config"])


def load(path):
    tensors, config = read_plain(path)
    try:
        from safetensors import safe_open
    except ImportError:
        return {k: v.astype(np.float64) for k, v in tensors.items()}, config
    with safe_open(path, framework="numpy") as f:
        assert json.loads(f.metadata()["config"]) == config
        assert sorted(f.keys()) == sorted(tensors)
        for k in f.keys():
            assert np.array_equal(f.get_tensor(k), tensors[k]), k
    return {k: v.astype(np.float64) for k, v in tensors.items()}, config


# ----------------------------------------------------------------- helpers
CHECKS = []


def close(name, got, want, tol=2e-6):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    err = float(np.max(np.abs(got - want) / (1.0 + np.abs(want)))) if got.size else 0.0
    CHECKS.append((name, err))
    assert err < tol, f"{name}: max rel err {err:.3g}"


def sub(t, prefix):
    return {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}


def fd_check(name, t, fn, leaves, seeds, tag="grad", picks=3):
    """Central differences of L = sum_k sum(fn(t)[k] * t['grad_out.'+k]) for `picks` entries of each leaf."""
    rng = np.random.default_rng(0)

    def loss(tt):
        outs = fn(tt)
        return sum(float(np.sum(outs[k] * tt["grad_out." + k])) for k in seeds)

    for leaf in leaves:
        stored = t[f"{tag}.{leaf}"]
        for flat in rng.choice(stored.size, size=min(picks, stored.size), replace=False):
            idx = np.unravel_index(flat, stored.shape)
            h = 1e-6
            tp = dict(t)
            tp[leaf] = t[leaf].copy()
            tp[leaf][idx] += h
            lp = loss(tp)
            tp[leaf][idx] -= 2 * h
            lm = loss(tp)
            close(f"{name} {tag}.{leaf}{list(map(int, idx))}", stored[idx], (lp - lm) / (2 * h), tol=1e-5)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# ----------------------------------------------------------------- recurrent
def gru_cell(x, h, wi, wh, bi, bh):
    gi, gh = linear(x, wi, bi), linear(h, wh, bh)
    n_h = h.shape[-1]
    r = sigmoid(gi[..., :n_h] + gh[..., :n_h])
    z = sigmoid(gi[..., n_h:2 * n_h] + gh[..., n_h:2 * n_h])
    n = np.tanh(gi[..., 2 * n_h:] + r * gh[..., 2 * n_h:])
    return (1 - z) * n + z * h


def lstm_cell(x, h, c, wi, wh, bi, bh):
    g = linear(x, wi, bi) + linear(h, wh, bh)
    n_h = h.shape[-1]
    i, f = sigmoid(g[..., :n_h]), sigmoid(g[..., n_h:2 * n_h])
    gg, o = np.tanh(g[..., 2 * n_h:3 * n_h]), sigmoid(g[..., 3 * n_h:])
    c2 = f * c + i * gg
    return o * np.tanh(c2), c2


def rnn_packed(t, kind, layers):
    """Bidirectional multi-layer GRU/LSTM over each row's first `length` steps; padding 0."""
    x, lengths = t["x"], t["lengths"].astype(int)
    b, steps, _ = x.shape
    n_h = t["weight_hh_l0"].shape[1]
    out = np.zeros((b, steps, 2 * n_h))
    h_n = np.zeros((2 * layers, b, n_h))
    c_n = np.zeros((2 * layers, b, n_h))
    for row in range(b):
        seq = x[row, :lengths[row]]
        for layer in range(layers):
            outs = []
            for d, suffix in enumerate(["", "_reverse"]):
                p = [t[f"{w}_l{layer}{suffix}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                h = t["h0"][2 * layer + d, row]
                c = t["c0"][2 * layer + d, row] if kind == "lstm" else None
                order = range(len(seq)) if d == 0 else reversed(range(len(seq)))
                ys = np.zeros((len(seq), n_h))
                for s in order:
                    if kind == "gru":
                        h = gru_cell(seq[s], h, *p)
                    else:
                        h, c = lstm_cell(seq[s], h, c, *p)
                    ys[s] = h
                h_n[2 * layer + d, row] = h
                if kind == "lstm":
                    c_n[2 * layer + d, row] = c
                outs.append(ys)
            seq = np.concatenate(outs, axis=1)
        out[row, :lengths[row]] = seq
    res = {"output": out, "h_n": h_n}
    if kind == "lstm":
        res["c_n"] = c_n
    return res


def check_rnn(d, kind):
    t, cfg = load(os.path.join(d, f"{kind}.safetensors"))
    fn = lambda tt: rnn_packed(tt, kind, cfg["num_layers"])  # noqa: E731
    for k, v in fn(t).items():
        close(f"{kind} {k}", t[k], v)
    assert np.all(t["output"][1, 4:] == 0), "output must be exactly 0 at padding"
    seeds = ["output", "h_n"] + (["c_n"] if kind == "lstm" else [])
    fd_check(kind, t, fn, ["x", "h0", "weight_ih_l0", "weight_hh_l1_reverse", "bias_hh_l0_reverse",
                           "bias_ih_l1"] + (["c0"] if kind == "lstm" else []), seeds)


def check_cell(d, kind):
    t, _ = load(os.path.join(d, f"{kind}cell.safetensors"))
    p = lambda tt: [tt[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]  # noqa: E731
    if kind == "gru":
        fn = lambda tt: {"h_out": gru_cell(tt["x"], tt["h"], *p(tt))}  # noqa: E731
    else:
        fn = lambda tt: dict(zip(("h_out", "c_out"), lstm_cell(tt["x"], tt["h"], tt["c"], *p(tt))))  # noqa
    outs = fn(t)
    for k, v in outs.items():
        close(f"{kind}cell {k}", t[k], v)
    fd_check(f"{kind}cell", t, fn, ["x", "h", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]
             + (["c"] if kind == "lstm" else []), list(outs))


# ----------------------------------------------------------------- layer norm, ops
def check_layernorm(d):
    t, cfg = load(os.path.join(d, "layernorm.safetensors"))
    fn = lambda tt: {"y": layer_norm(tt["x"], tt["weight"], tt["bias"], cfg["eps"])}  # noqa: E731
    close("layernorm y", t["y"], fn(t)["y"])
    fd_check("layernorm", t, fn, ["x", "weight", "bias"], ["y"])


def check_ops(d):
    t, _ = load(os.path.join(d, "ops.safetensors"))
    ls = sub(t, "log_softmax.")
    f_ls = lambda tt: {"y": tt["x"] - np.log(np.exp(tt["x"]).sum(-1, keepdims=True))}  # noqa: E731
    close("log_softmax y", ls["y"], f_ls(ls)["y"])
    fd_check("log_softmax", ls, f_ls, ["x"], ["y"])
    for name, f in [("gelu", gelu), ("gelu_tanh", gelu_tanh)]:
        g = sub(t, name + ".")
        fn = lambda tt, f=f: {"y": f(tt["x"])}  # noqa: E731
        close(f"{name} y", g["y"], fn(g)["y"])
        fd_check(name, g, fn, ["x"], ["y"])
    for name, eps in [("cross_entropy", 0.1), ("cross_entropy_plain", 0.0)]:
        c = sub(t, name + ".")
        tgt = c["target"].astype(int)
        keep = tgt != 0

        def ce(tt, tgt=tgt, keep=keep, eps=eps):
            z = tt["logits"]
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            li = (1 - eps) * -logp[np.arange(len(tgt)), tgt] + eps / z.shape[1] * -logp.sum(1)
            return {"loss": np.array([li[keep].mean()])}

        close(f"{name} loss", c["loss"], ce(c)["loss"])
        c["grad_out.loss"] = np.ones(1)
        fd_check(name, c, ce, ["logits"], ["loss"], picks=6)
        assert np.all(c["grad.logits"][~keep] == 0)


# ----------------------------------------------------------------- attention
def mha(t, q_in, kv_in, nh, key_pad=None, attn_mask=None):
    """Returns attn_output [B,T,E] and per-head weights [B,H,T,S] (masks: 1 = blocked)."""
    e = q_in.shape[-1]
    hd = e // nh
    w, bias = t["in_proj_weight"], t["in_proj_bias"]
    q = linear(q_in, w[:e], bias[:e])
    k = linear(kv_in, w[e:2 * e], bias[e:2 * e])
    v = linear(kv_in, w[2 * e:], bias[2 * e:])
    split = lambda a: a.reshape(a.shape[0], a.shape[1], nh, hd).transpose(0, 2, 1, 3)  # noqa: E731
    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(hd)  # [B,H,T,S]
    if key_pad is not None:
        scores = np.where(key_pad[:, None, None, :] > 0, -np.inf, scores)
    if attn_mask is not None:
        scores = np.where(attn_mask[None, None] > 0, -np.inf, scores)
    a = softmax(scores)
    ctx = (a @ split(v)).transpose(0, 2, 1, 3).reshape(q_in.shape[0], q_in.shape[1], e)
    return linear(ctx, t["out_proj.weight"], t["out_proj.bias"]), a


def check_mha(d):
    t, cfg = load(os.path.join(d, "mha.safetensors"))
    nh = cfg["num_heads"]
    cases = {
        "cross.": (lambda tt: mha(tt, tt["query"], tt["memory"], nh, key_pad=tt["key_padding_mask"]),
                   ["query", "memory"]),
        "self.": (lambda tt: mha(tt, tt["x"], tt["x"], nh, attn_mask=tt["attn_mask"]), ["x"]),
    }
    for prefix, (f, inputs) in cases.items():
        c = sub(t, prefix)
        fn = lambda tt, f=f: dict(zip(("attn_output", "attn_weights_per_head"), f(tt)))  # noqa: E731
        out = fn(c)
        close(f"mha {prefix}attn_output", c["attn_output"], out["attn_output"])
        close(f"mha {prefix}attn_weights_per_head", c["attn_weights_per_head"], out["attn_weights_per_head"])
        close(f"mha {prefix}attn_weights", c["attn_weights"], out["attn_weights_per_head"].mean(1))
        leaves = inputs + ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
        fd_check("mha " + prefix, c, fn, leaves, ["attn_output"])
        fd_check("mha " + prefix, c, fn, leaves, ["attn_weights_per_head"], tag="grad_w")
    assert np.all(t["cross.attn_weights"][1, :, 3:] == 0) and np.all(t["self.attn_weights"][:, 0, 1:] == 0)


def attend(tt, scores):
    scores = np.where(tt["mask"] > 0, -np.inf, scores)
    a = softmax(scores)
    return {"context": np.einsum("bs,bsd->bd", a, tt["keys"]), "weights": a}


def check_rnn_attention(d):
    t, _ = load(os.path.join(d, "additive_step.safetensors"))

    def additive(tt):
        e = np.tanh(linear(tt["query"], tt["w_q.weight"])[:, None] + linear(tt["keys"], tt["w_k.weight"],
                                                                             tt["w_k.bias"]))
        return attend(tt, linear(e, tt["v.weight"])[..., 0])

    runs = [("additive", t, additive, ["query", "keys", "w_q.weight", "w_k.weight", "w_k.bias", "v.weight"])]
    t, _ = load(os.path.join(d, "luong.safetensors"))
    dot = lambda tt: attend(tt, np.einsum("bd,bsd->bs", tt["query"], tt["keys"]))  # noqa: E731
    gen = lambda tt: attend(tt, np.einsum("bd,bsd->bs", linear(tt["query"], tt["w.weight"]), tt["keys"]))  # noqa
    runs += [("luong dot", sub(t, "dot."), dot, ["query", "keys"]),
             ("luong general", sub(t, "general."), gen, ["query", "keys", "w.weight"])]
    for name, c, fn, leaves in runs:
        out = fn(c)
        close(f"{name} context", c["context"], out["context"])
        close(f"{name} weights", c["weights"], out["weights"])
        assert np.all(c["weights"][c["mask"] > 0] == 0)
        fd_check(name, c, fn, leaves, ["context"])
        fd_check(name, c, fn, leaves, ["weights"], tag="grad_w")


# ----------------------------------------------------------------- transformer
def transformer_logits(t, cfg, src, tgt_in, src_pad):
    d, nh, pre = cfg["d_model"], cfg["nhead"], cfg["norm_first"]
    act = gelu if cfg["activation"] == "gelu" else (lambda x: np.maximum(x, 0.0))
    ln = lambda x, p: layer_norm(x, t[p + ".weight"], t[p + ".bias"], cfg["layer_norm_eps"])  # noqa: E731
    att = lambda p, q, kv, **m: mha(sub(t, p + "."), q, kv, nh, **m)[0]  # noqa: E731
    ff = lambda p, x: linear(act(linear(x, t[p + "linear1.weight"], t[p + "linear1.bias"])),  # noqa: E731
                             t[p + "linear2.weight"], t[p + "linear2.bias"])
    emb = lambda table, ids: t[table][ids.astype(int)] * math.sqrt(d) + t["pos_enc"][:ids.shape[1]]  # noqa
    x = emb("src_emb.weight", src)
    for layer in range(cfg["layers"]):
        p = f"transformer.encoder.layers.{layer}."
        if pre:
            x = x + att(p + "self_attn", ln(x, p + "norm1"), ln(x, p + "norm1"), key_pad=src_pad)
            x = x + ff(p, ln(x, p + "norm2"))
        else:
            x = ln(x + att(p + "self_attn", x, x, key_pad=src_pad), p + "norm1")
            x = ln(x + ff(p, x), p + "norm2")
    memory = ln(x, "transformer.encoder.norm")
    n = tgt_in.shape[1]
    causal = np.triu(np.ones((n, n)), 1)
    y = emb("tgt_emb.weight", tgt_in)
    for layer in range(cfg["layers"]):
        p = f"transformer.decoder.layers.{layer}."
        if pre:
            y = y + att(p + "self_attn", ln(y, p + "norm1"), ln(y, p + "norm1"), attn_mask=causal)
            y = y + att(p + "multihead_attn", ln(y, p + "norm2"), memory, key_pad=src_pad)
            y = y + ff(p, ln(y, p + "norm3"))
        else:
            y = ln(y + att(p + "self_attn", y, y, attn_mask=causal), p + "norm1")
            y = ln(y + att(p + "multihead_attn", y, memory, key_pad=src_pad), p + "norm2")
            y = ln(y + ff(p, y), p + "norm3")
    y = ln(y, "transformer.decoder.norm")
    return memory, linear(y, t["out_proj.weight"], t["out_proj.bias"])


def check_transformer(d, name):
    t, cfg = load(os.path.join(d, f"{name}.safetensors"))
    src, pad = t["src"], t["src_key_padding_mask"]
    memory, logits = transformer_logits(t, cfg, src, t["tgt_in"], pad)
    close(f"{name} memory (unpadded rows)", t["memory"][pad == 0], memory[pad == 0])
    close(f"{name} logits", t["logits"], logits)
    ys = np.full((src.shape[0], 1), 1.0)
    for _ in range(t["greedy_ids"].shape[1]):
        step = transformer_logits(t, cfg, src, ys, pad)[1][:, -1]
        step[:, 2] = -np.inf  # EOS masked
        ys = np.concatenate([ys, step.argmax(1)[:, None].astype(np.float64)], axis=1)
    assert np.array_equal(ys[:, 1:], t["greedy_ids"]), f"{name}: greedy ids differ"
    CHECKS.append((f"{name} greedy_ids equal", 0.0))
    fn = lambda tt: {"logits": transformer_logits(tt, cfg, src, tt["tgt_in"], pad)[1]}  # noqa: E731
    fd_check(name, t, fn, ["src_emb.weight", "tgt_emb.weight", "out_proj.weight",
                           "transformer.encoder.layers.0.self_attn.in_proj_weight",
                           "transformer.decoder.layers.1.multihead_attn.in_proj_bias",
                           "transformer.decoder.layers.0.norm2.weight", "transformer.encoder.norm.bias",
                           "transformer.decoder.layers.1.linear1.weight"], ["logits"], picks=2)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.path.normpath(os.path.join(
        here, "..", "..", "crates", "attend", "tests", "fixtures", "torch")))
    d = ap.parse_args().dir
    check_rnn(d, "gru")
    check_rnn(d, "lstm")
    check_cell(d, "gru")
    check_cell(d, "lstm")
    check_layernorm(d)
    check_ops(d)
    check_mha(d)
    check_rnn_attention(d)
    check_transformer(d, "transformer")
    check_transformer(d, "transformer_postnorm")
    worst = max(CHECKS, key=lambda c: c[1])
    print(f"{len(CHECKS)} checks passed; worst relative error {worst[1]:.2g} ({worst[0]})")


if __name__ == "__main__":
    main()
