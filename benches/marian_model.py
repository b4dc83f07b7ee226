"""Marian model directories for `benches/vs-ct2-marian.sh` (numpy only: the peers' Python).

    python benches/marian_model.py random OUT [--vocab 32000 --d 512 --ffn 2048 --heads 8 --layers 6]
    python benches/marian_model.py complete FIXTURE_DIR OUT

`random`: an OPUS-MT-size Marian Transformer with seeded random weights, as Marian writes it
(`model.npz` with Marian's names, matrices `[in, out]`, biases `[1, n]`, the options in
`special:model.yml`; `decoder.yml`, one `vocab.yml` for both sides, `source.spm` = `target.spm`).
OPUS-MT's configuration: post-norm, swish, every embedding tied (`tied-embeddings-all`). The
SentencePiece model is the committed test fixture's (`crates/attend/tests/fixtures/marian/tied/`,
about 400 pieces); the vocabulary is its vocabulary (`</s>` 0, `<unk>` 1, the pieces) filled up to
`--vocab` entries with pieces no text contains (a private-use character and a number), so that
text is segmented by the real pieces and the output layer has the full width. `</s>` gets an output
bias of −10⁹: random weights would end sentences at random, and this way every hypothesis of both
systems runs to the length limit (the same work on both sides; the scripts compare token counts).

`complete`: a copy of a Marian directory (the fixtures, written by `tools/golden/marian.py`) whose
`special:model.yml` also holds the options CTranslate2's converter reads
(`transformer-no-projection`, `transformer-guided-alignment-layer`, with Marian's defaults, as a
`model.npz` written by Marian has them). The weights are unchanged.

Deterministic: the same arguments write the same bytes.
"""

import argparse
import json
import os
import shutil

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "crates/attend/tests/fixtures/marian/tied/marian")

# Options Marian writes into every model.npz that the fixtures' yml leaves out.
MARIAN_DEFAULTS = {
    "transformer-no-projection": "false",
    "transformer-guided-alignment-layer": "last",
}


def yml_text(options):
    return "".join(f"{k}: {v}\n" for k, v in options.items())


def yml_entry(text):
    """`special:model.yml` as Marian stores it: the bytes and a NUL, as int8."""
    return np.frombuffer(text.encode("utf-8") + b"\0", dtype=np.int8)


def read_vocab(path):
    """The pieces of a `"piece": id` vocabulary in id order (as tools/golden/marian.py writes it)."""
    pieces = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                piece, i = line.rsplit(":", 1)
                pieces[int(i)] = json.loads(piece)
    return [pieces[i] for i in range(len(pieces))]


def write_vocab(pieces, path):
    with open(path, "w", encoding="utf-8") as f:
        for i, piece in enumerate(pieces):
            f.write(f"{json.dumps(piece, ensure_ascii=False)}: {i}\n")


def random_model(out, vocab, d, ffn, heads, layers, seed):
    rng = np.random.default_rng(seed)
    pieces = read_vocab(os.path.join(FIXTURE, "vocab.yml"))
    if vocab < len(pieces):
        raise SystemExit(f"--vocab {vocab}: the fixture's vocabulary alone has {len(pieces)} pieces")
    pieces += [f"\ue000{i}" for i in range(len(pieces), vocab)]

    def matrix(n_in, n_out):  # Glorot-uniform, Marian's default
        limit = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-limit, limit, size=(n_in, n_out)).astype(np.float32)

    def bias(n):
        return (0.02 * rng.standard_normal((1, n))).astype(np.float32)

    w = {"Wemb": (rng.standard_normal((vocab, d)) / np.sqrt(d)).astype(np.float32)}
    out_bias = bias(vocab)
    out_bias[0, 0] = -1e9  # </s>: never chosen, so every sentence runs to the limit
    w["decoder_ff_logit_out_b"] = out_bias

    def norm(prefix):
        w[f"{prefix}_ln_scale"] = np.ones((1, d), np.float32)
        w[f"{prefix}_ln_bias"] = np.zeros((1, d), np.float32)

    def attention(prefix):
        for p in "qkvo":
            w[f"{prefix}_W{p}"] = matrix(d, d)
            w[f"{prefix}_b{p}"] = bias(d)
        norm(f"{prefix}_Wo")

    def feed_forward(prefix):
        w[f"{prefix}_W1"], w[f"{prefix}_b1"] = matrix(d, ffn), bias(ffn)
        w[f"{prefix}_W2"], w[f"{prefix}_b2"] = matrix(ffn, d), bias(d)
        norm(f"{prefix}_ffn")

    for l in range(1, layers + 1):
        attention(f"encoder_l{l}_self")
        feed_forward(f"encoder_l{l}_ffn")
    for l in range(1, layers + 1):
        attention(f"decoder_l{l}_self")
        attention(f"decoder_l{l}_context")
        feed_forward(f"decoder_l{l}_ffn")
    options = {
        "type": "transformer",
        "dim-emb": d,
        "dim-vocabs": f"[{vocab}, {vocab}]",
        "enc-depth": layers,
        "dec-depth": layers,
        "transformer-heads": heads,
        "transformer-dim-ffn": ffn,
        "transformer-ffn-activation": "swish",
        "transformer-preprocess": '""',
        "transformer-postprocess": "dan",
        "transformer-postprocess-emb": "d",
        "transformer-decoder-autoreg": "self-attention",
        "tied-embeddings": "true",
        "tied-embeddings-all": "true",
        "max-length": 512,
        **MARIAN_DEFAULTS,
    }
    w["special:model.yml"] = yml_entry(yml_text(options))
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, "model.npz"), **w)
    write_vocab(pieces, os.path.join(out, "vocab.yml"))
    with open(os.path.join(out, "decoder.yml"), "w") as f:
        f.write("models:\n  - model.npz\nvocabs:\n  - vocab.yml\n  - vocab.yml\n"
                "beam-size: 4\nnormalize: 1\n")
    for spm in ("source.spm", "target.spm"):
        shutil.copyfile(os.path.join(FIXTURE, spm), os.path.join(out, spm))
    params = sum(x.size for k, x in w.items() if not k.startswith("special:"))
    print(f"wrote {out}: {params} parameters, vocabulary {vocab} ({vocab - len(read_vocab(os.path.join(FIXTURE, 'vocab.yml')))} filler pieces)")


def complete(src, out):
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(src):
        if name != "model.npz":
            shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
    with np.load(os.path.join(src, "model.npz")) as z:
        w = {k: z[k] for k in z.files}
    text = w["special:model.yml"][:-1].tobytes().decode("utf-8")
    present = {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}
    text += yml_text({k: v for k, v in MARIAN_DEFAULTS.items() if k not in present})
    w["special:model.yml"] = yml_entry(text)
    np.savez(os.path.join(out, "model.npz"), **w)
    print(f"wrote {out} (options completed for CTranslate2's converter)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("random", help="OPUS-MT-size model with random weights")
    r.add_argument("out")
    r.add_argument("--vocab", type=int, default=32000)
    r.add_argument("--d", type=int, default=512)
    r.add_argument("--ffn", type=int, default=2048)
    r.add_argument("--heads", type=int, default=8)
    r.add_argument("--layers", type=int, default=6)
    r.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("complete", help="a Marian directory with the options CTranslate2 reads")
    c.add_argument("src")
    c.add_argument("out")
    a = ap.parse_args()
    if a.what == "random":
        random_model(a.out, a.vocab, a.d, a.ffn, a.heads, a.layers, a.seed)
    else:
        complete(a.src, a.out)


if __name__ == "__main__":
    main()
