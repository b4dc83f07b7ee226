"""Golden fixtures for `attend import hf` and `attend import marian`: two small Hugging Face
`MarianMTModel`s with the OPUS-MT configuration scaled down, trained on the bundled English→French
data, saved in Hugging Face form and written in Marian `.npz` form, with the outputs attend must
reproduce.

The OPUS-MT configuration: post-norm layers, swish feed-forward, embeddings scaled by √d,
sines-then-cosines positions, `</s>` appended to the source, decoding from the pad token, the pad
token never generated (`bad_words_ids = [[pad]]`), `final_logits_bias`. Two variants:

- `tied`: one SentencePiece model and one vocabulary for both sides, every embedding tied (Marian's
  `tied-embeddings-all`, Hugging Face's `share_encoder_decoder_embeddings`);
- `separate`: a SentencePiece model and a vocabulary per side; the decoder's input and output
  embeddings tied (Marian's `tied-embeddings`).

Ids follow OPUS-MT: `</s>` 0, `<unk>` 1, the SentencePiece pieces in their order, `<pad>` last (Hugging
Face adds the pad row, all zeros; Marian's `.npz` has none, its decoder starts from a zero vector,
which is what the zero pad row gives).

For each variant, under `crates/attend/tests/fixtures/marian/<variant>/`:
  hf/       config.json, generation_config.json, model.safetensors, vocab.json (target_vocab.json),
            source.spm, target.spm, tokenizer_config.json
  marian/   model.npz (config in `special:model.yml`), decoder.yml, vocab.yml (vocab.src.yml,
            vocab.trg.yml), source.spm, target.spm
  expected.json   sources (ids, `</s>` included), greedy and beam-4 outputs of `generate`
  logits.safetensors  teacher-forced logits of the first sentences (`logits.<i>`, `[T, V]`)

Run through `tools/golden/marian.sh`, which makes the Python environment.
"""

import gzip
import json
import os
import sys

import numpy as np
import sentencepiece as spm
import torch
from safetensors.torch import save_file
from transformers import GenerationConfig, MarianConfig, MarianMTModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates/attend/tests/fixtures/marian")
TRAIN = os.path.join(ROOT, "data/en-fr/train.tsv.gz")
TEST = os.path.join(ROOT, "data/en-fr/test.tsv.gz")

VOCAB = 400  # SentencePiece pieces per model (<unk>, <s>, </s> included)
D, HEADS, FFN, LAYERS = 64, 4, 128, 2
MAX_POSITIONS = 128
MAX_LENGTH = 48  # generate: most tokens, the decoder start included
STEPS, BATCH, LR = int(os.environ.get("STEPS", "400")), 32, 3e-3
SENTENCES = 60  # greedy and beam outputs
LOGIT_SENTENCES = 3


def read_pairs(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")[:2]) for line in f if "\t" in line]


def train_spm(texts, prefix):
    text_file = prefix + ".txt"
    with open(text_file, "w", encoding="utf-8") as f:
        f.write("\n".join(texts))
    spm.SentencePieceTrainer.train(
        input=text_file,
        model_prefix=prefix,
        vocab_size=VOCAB,
        model_type="unigram",
        character_coverage=1.0,
        seed_sentencepiece_size=20000,
        normalization_rule_name="identity",  # no normalizer table: keeps the fixture small
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def vocab_of(sp):
    """OPUS-MT's vocabulary: </s> 0, <unk> 1, the pieces in order, then <pad>."""
    pieces = ["</s>", "<unk>"]
    pieces += [sp.id_to_piece(i) for i in range(sp.get_piece_size())
               if sp.id_to_piece(i) not in ("<unk>", "<s>", "</s>")]
    return {p: i for i, p in enumerate(pieces + ["<pad>"])}


def encode(sp, vocab, text):
    return [vocab.get(p, 1) for p in sp.encode(text, out_type=str)] + [0]


def batches(pairs, rng):
    while True:
        order = rng.permutation(len(pairs))
        for start in range(0, len(order) - BATCH + 1, BATCH):
            yield [pairs[i] for i in order[start:start + BATCH]]


def pad_rows(rows, pad):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows])


def train(model, pairs, pad):
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=0.1)
    model.train()
    for step, batch in zip(range(STEPS), batches(pairs, rng)):
        src = pad_rows([s for s, _ in batch], pad)
        labels = pad_rows([t for _, t in batch], -100)
        out = model(input_ids=src, attention_mask=(src != pad).long(), labels=labels)
        loss = loss_fn(out.logits.reshape(-1, out.logits.shape[-1]), labels.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == STEPS - 1:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
    model.eval()


def marian_yml(cfg, tied_all, vocab_sizes):
    lines = {
        "type": "transformer",
        "dim-emb": D,
        "dim-vocabs": list(vocab_sizes),
        "enc-depth": LAYERS,
        "dec-depth": LAYERS,
        "transformer-heads": HEADS,
        "transformer-dim-ffn": FFN,
        "transformer-ffn-activation": "swish",
        "transformer-preprocess": "",
        "transformer-postprocess": "dan",
        "transformer-postprocess-emb": "d",
        "transformer-decoder-autoreg": "self-attention",
        "tied-embeddings": True,
        "tied-embeddings-all": tied_all,
        "max-length": MAX_POSITIONS,
    }

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(str(x) for x in v) + "]"
        if v == "":
            return '""'
        return str(v)

    return "".join(f"{k}: {value(v)}\n" for k, v in lines.items())


def write_vocab_yml(vocab, path):
    """Marian's vocab.yml without the <pad> Hugging Face adds: `"piece": id` lines."""
    with open(path, "w", encoding="utf-8") as f:
        for piece, i in vocab.items():
            if piece != "<pad>":
                f.write(f"{json.dumps(piece, ensure_ascii=False)}: {i}\n")


def write_marian(model, cfg, dirname, tied_all, src_vocab, tgt_vocab):
    """The model as Marian writes it: weights `[in, out]`, biases `[1, n]`, no pad row."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    out = {}
    drop_pad = lambda w: w[:-1]  # the pad row is the last one
    if tied_all:
        out["Wemb"] = drop_pad(sd["model.shared.weight"])
    else:
        out["encoder_Wemb"] = drop_pad(sd["model.encoder.embed_tokens.weight"])
        out["decoder_Wemb"] = drop_pad(sd["model.decoder.embed_tokens.weight"])
    out["decoder_ff_logit_out_b"] = drop_pad(sd["final_logits_bias"][0])[None, :]

    def attention(hf, marian):
        for p in "qkv":
            out[f"{marian}_W{p}"] = sd[f"{hf}.{p}_proj.weight"].T.copy()
            out[f"{marian}_b{p}"] = sd[f"{hf}.{p}_proj.bias"][None, :]
        out[f"{marian}_Wo"] = sd[f"{hf}.out_proj.weight"].T.copy()
        out[f"{marian}_bo"] = sd[f"{hf}.out_proj.bias"][None, :]

    def norm(hf, marian):
        out[f"{marian}_ln_scale"] = sd[f"{hf}.weight"][None, :]
        out[f"{marian}_ln_bias"] = sd[f"{hf}.bias"][None, :]

    def ffn(hf, marian):
        out[f"{marian}_W1"] = sd[f"{hf}.fc1.weight"].T.copy()
        out[f"{marian}_b1"] = sd[f"{hf}.fc1.bias"][None, :]
        out[f"{marian}_W2"] = sd[f"{hf}.fc2.weight"].T.copy()
        out[f"{marian}_b2"] = sd[f"{hf}.fc2.bias"][None, :]
        norm(f"{hf}.final_layer_norm", f"{marian}_ffn")

    for l in range(LAYERS):
        hf, m = f"model.encoder.layers.{l}", f"encoder_l{l + 1}"
        attention(f"{hf}.self_attn", f"{m}_self")
        norm(f"{hf}.self_attn_layer_norm", f"{m}_self_Wo")
        ffn(hf, f"{m}_ffn")
        hf, m = f"model.decoder.layers.{l}", f"decoder_l{l + 1}"
        attention(f"{hf}.self_attn", f"{m}_self")
        norm(f"{hf}.self_attn_layer_norm", f"{m}_self_Wo")
        attention(f"{hf}.encoder_attn", f"{m}_context")
        norm(f"{hf}.encoder_attn_layer_norm", f"{m}_context_Wo")
        ffn(hf, f"{m}_ffn")
    sizes = (len(src_vocab) - 1, len(tgt_vocab) - 1)
    yml = marian_yml(cfg, tied_all, sizes).encode("utf-8") + b"\0"
    out["special:model.yml"] = np.frombuffer(yml, dtype=np.int8)
    os.makedirs(dirname, exist_ok=True)
    np.savez(os.path.join(dirname, "model.npz"), **out)
    if tied_all:
        write_vocab_yml(src_vocab, os.path.join(dirname, "vocab.yml"))
        vocabs = ["vocab.yml", "vocab.yml"]
    else:
        write_vocab_yml(src_vocab, os.path.join(dirname, "vocab.src.yml"))
        write_vocab_yml(tgt_vocab, os.path.join(dirname, "vocab.trg.yml"))
        vocabs = ["vocab.src.yml", "vocab.trg.yml"]
    with open(os.path.join(dirname, "decoder.yml"), "w") as f:
        f.write(f"models:\n  - model.npz\nvocabs:\n  - {vocabs[0]}\n  - {vocabs[1]}\n"
                "beam-size: 4\nnormalize: 1\n")


def variant(name, tied_all, pairs, tests, work):
    src_sp = train_spm([s for s, _ in pairs], f"{work}/{name}-src") if not tied_all else None
    tgt_sp = train_spm([t for _, t in pairs], f"{work}/{name}-tgt") if not tied_all else None
    if tied_all:
        src_sp = tgt_sp = train_spm([x for p in pairs for x in p], f"{work}/{name}-joint")
    src_vocab, tgt_vocab = vocab_of(src_sp), vocab_of(tgt_sp)
    assert len(src_vocab) == len(tgt_vocab), "one pad id for both sides"
    pad = len(tgt_vocab) - 1
    cfg = MarianConfig(
        vocab_size=len(src_vocab), decoder_vocab_size=len(tgt_vocab), d_model=D,
        encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
        activation_function="swish", max_position_embeddings=MAX_POSITIONS, scale_embedding=True,
        share_encoder_decoder_embeddings=tied_all, tie_word_embeddings=True,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
        dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
    )
    torch.manual_seed(0)
    model = MarianMTModel(cfg)
    ids = [(encode(src_sp, src_vocab, s), encode(tgt_sp, tgt_vocab, t)) for s, t in pairs]
    ids = [(s, t) for s, t in ids if len(s) <= 40 and len(t) <= 40]
    train(model, ids, pad)
    with torch.no_grad():
        # The pad row as OPUS-MT's converted models have it: zeros (Marian has no pad token; the
        # tied output layer trained it here). The decoder starts from it.
        model.get_input_embeddings().weight[pad] = 0
        model.get_decoder().embed_tokens.weight[pad] = 0

    base = os.path.join(OUT, name)
    hf_dir = os.path.join(base, "hf")
    model.generation_config = GenerationConfig(**generation_settings(pad), num_beams=4)
    model.save_pretrained(hf_dir)
    for side, sp in (("source", src_sp), ("target", tgt_sp)):
        with open(os.path.join(hf_dir, f"{side}.spm"), "wb") as f:
            f.write(sp.serialized_model_proto())
    with open(os.path.join(hf_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(src_vocab, f, ensure_ascii=False, indent=0)
    if not tied_all:
        with open(os.path.join(hf_dir, "target_vocab.json"), "w", encoding="utf-8") as f:
            json.dump(tgt_vocab, f, ensure_ascii=False, indent=0)
    with open(os.path.join(hf_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"separate_vocabs": not tied_all, "model_max_length": 512}, f)
    mar_dir = os.path.join(base, "marian")
    write_marian(model, cfg, mar_dir, tied_all, src_vocab, tgt_vocab)
    for side, sp in (("source", src_sp), ("target", tgt_sp)):
        with open(os.path.join(mar_dir, f"{side}.spm"), "wb") as f:
            f.write(sp.serialized_model_proto())

    sources = [encode(src_sp, src_vocab, s) for s, _ in tests[:SENTENCES]]
    settings = generation_settings(pad)
    greedy, beam = [], []
    with torch.no_grad():
        for src in sources:
            x = torch.tensor([src])
            g = model.generate(x, num_beams=1, **settings)[0].tolist()
            b = model.generate(x, num_beams=4, **settings)[0].tolist()
            greedy.append(strip(g, pad))
            beam.append(strip(b, pad))
        logits = {}
        for i, src in enumerate(sources[:LOGIT_SENTENCES]):
            tgt_in = [pad] + greedy[i]
            out = model(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([tgt_in]))
            logits[f"logits.{i}"] = out.logits[0].contiguous()
    save_file(logits, os.path.join(base, "logits.safetensors"))
    expected = {
        "pad": pad, "eos": 0, "unk": 1, "max_length": MAX_LENGTH, "num_beams": 4,
        "length_penalty": 1.0, "sources": sources, "greedy": greedy, "beam4": beam,
        "logit_targets": [[pad] + greedy[i] for i in range(LOGIT_SENTENCES)],
    }
    with open(os.path.join(base, "expected.json"), "w") as f:
        json.dump(expected, f)
    distinct = len({tuple(g) for g in greedy})
    print(f"{name}: {distinct} distinct greedy outputs of {len(greedy)}; "
          f"{sum(g != b for g, b in zip(greedy, beam))} beam outputs differ from greedy")


def generation_settings(pad):
    """OPUS-MT's generation settings (without `forced_eos_token_id`, which only acts at
    `max_length`)."""
    return dict(max_length=MAX_LENGTH, bad_words_ids=[[pad]], decoder_start_token_id=pad,
                eos_token_id=0, pad_token_id=pad, length_penalty=1.0, early_stopping=False,
                do_sample=False)


def strip(seq, pad):
    """Generated ids after the decoder start, up to and including </s> (padding removed)."""
    seq = seq[1:]
    return seq[: seq.index(0) + 1] if 0 in seq else [t for t in seq if t != pad]


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/attend-marian-golden"
    os.makedirs(work, exist_ok=True)
    pairs = read_pairs(TRAIN)
    tests = [p for p in read_pairs(TEST) if 3 <= len(p[0].split()) <= 20]
    variant("tied", True, pairs, tests, work)
    variant("separate", False, pairs, tests, work)


if __name__ == "__main__":
    main()
