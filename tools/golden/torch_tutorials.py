"""Golden fixtures for `attend import-torch`: two small translation models written the way PyTorch
tutorials write them, trained for about a minute each on the bundled English→French data, saved with
`torch.save`, with the greedy and beam outputs attend must reproduce.

- `transformer/`: the `torch.nn.Transformer` tutorial's `Seq2SeqTransformer` (post-norm, ReLU, a
  float32 `[maxlen, 1, d]` sinusoidal buffer `positional_encoding.pos_embedding`, embeddings scaled by
  √d inside `TokenEmbedding`), character vocabulary, ids `<unk>` 0, `<pad>` 1, `<bos>` 2, `<eos>` 3,
  sources wrapped as `<bos> … <eos>`. Saved as `{"epoch", "loss", "model_state_dict"}`.
- `gru/`: the seq2seq tutorial's `EncoderRNN` / `DecoderRNN` (GRU, no attention, the decoder starts
  from the encoder's final state, ReLU on the decoder's embeddings), word vocabulary, ids `SOS` 0,
  `EOS` 1, `PAD` 2, `UNK` 3, `EOS` appended to the source. Encoder and decoder saved as two state
  dicts, `encoder.pt` and `decoder.pt`.

Each folder gets the checkpoint(s), `vocab.json` (the token of each id, per side), `check.json` (a
check batch in the model's ids: sources without the `<bos>`/`<eos>` the model adds, and greedy
outputs, for the import to verify) and
`expected.json` (at least 100 test sentences, as text, with the greedy and beam outputs as text:
tokens joined without a space (characters) or with one (words), special tokens dropped, a leading
space removed, `<unk>` written as such). The mapping files beside them are written by hand.

Decoding is attend's (crates/attend/src/search): greedy; beam search keeping K hypotheses, each
step extending every live one by its 2K best tokens, the best 2K candidates in order (stable
sort): an `<eos>` candidate finishes (score log P / ((5 + |y|) / 6)^α with |y| counting the
`<eos>`), the others fill the K places; done at K finished or at the length limit, where the live
ones finish as they are. Logits are computed in float64 (on the float32 weights).

    /opt/peers/bin/python tools/golden/torch_tutorials.py [OUT_DIR]

Seeded; one to two minutes of training per model on two threads of a quiet machine (STEPS=… overrides).
"""

import gzip
import json
import math
import os
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "crates/attend/tests/fixtures/torch_tutorials")
TRAIN = os.path.join(ROOT, "data/en-fr/train.tsv.gz")
TEST = os.path.join(ROOT, "data/en-fr/test.tsv.gz")
DEV = os.path.join(ROOT, "data/en-fr/dev.tsv.gz")
SENTENCES = 120
BEAM, ALPHA = 4, 0.6
CHECK = 8

torch.set_num_threads(int(os.environ.get("THREADS", "2")))


def read_pairs(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")[:2]) for line in f if "\t" in line]


# ---------------------------------------------------------------- decoding, as attend decodes


def greedy(step, state, bos, eos, max_len):
    ids, prev = [], bos
    for _ in range(max_len):
        logits, state = step([prev], state, [0])
        tok = int(torch.argmax(logits[0]))  # first maximum, as attend's top-1
        if tok == eos:
            break
        ids.append(tok)
        prev = tok
    return ids


def beam(step, state, bos, eos, max_len, k=BEAM, alpha=ALPHA):
    def penalty(n):
        return ((5.0 + n) / 6.0) ** alpha

    beams = [([], 0.0)]  # live (ids, log P); rows of `state` in this order
    finished = []
    prev = [bos]
    for t in range(max_len):
        logits, state = step(prev, state, list(range(len(beams))))
        lp = F.log_softmax(logits, dim=-1)
        cands = []
        for b, (ids, base) in enumerate(beams):
            vals, toks = torch.sort(lp[b], descending=True, stable=True)
            for x, tok in zip(vals[: 2 * k].tolist(), toks[: 2 * k].tolist()):
                cands.append((base + x, b, tok))
        cands.sort(key=lambda c: -c[0])  # stable: ties keep beam, then token-rank order
        new, rows = [], []
        for total, b, tok in cands:
            ids = beams[b][0]
            if tok == eos:
                finished.append((total / penalty(len(ids) + 1), ids))
                if len(finished) >= k:
                    break
                continue
            new.append((ids + [tok], total))
            rows.append(b)
            if len(new) == k:
                break
        last = t + 1 == max_len
        if len(finished) >= k or not new or last:
            if len(finished) < 1 or last:
                finished.extend((lp_ / penalty(len(ids)), ids) for ids, lp_ in new)
            break
        beams = new
        prev = [ids[-1] for ids, _ in new]
        state = ("select", rows, state)
    finished.sort(key=lambda h: -h[0])
    return finished[0][1] if finished else []


# ---------------------------------------------------------------- the Transformer tutorial

UNK_IDX, PAD_IDX, BOS_IDX, EOS_IDX = 0, 1, 2, 3
T_SPECIALS = ["<unk>", "<pad>", "<bos>", "<eos>"]


class PositionalEncoding(nn.Module):
    def __init__(self, emb_size, dropout, maxlen=5000):
        super().__init__()
        den = torch.exp(-torch.arange(0, emb_size, 2) * math.log(10000) / emb_size)
        pos = torch.arange(0, maxlen).reshape(maxlen, 1)
        pos_embedding = torch.zeros((maxlen, emb_size))
        pos_embedding[:, 0::2] = torch.sin(pos * den)
        pos_embedding[:, 1::2] = torch.cos(pos * den)
        pos_embedding = pos_embedding.unsqueeze(-2)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pos_embedding", pos_embedding)

    def forward(self, token_embedding):
        return self.dropout(token_embedding + self.pos_embedding[: token_embedding.size(0), :])


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, emb_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size)
        self.emb_size = emb_size

    def forward(self, tokens):
        return self.embedding(tokens.long()) * math.sqrt(self.emb_size)


class Seq2SeqTransformer(nn.Module):
    def __init__(self, num_encoder_layers, num_decoder_layers, emb_size, nhead, src_vocab_size,
                 tgt_vocab_size, dim_feedforward=512, dropout=0.1, maxlen=5000):
        super().__init__()
        self.transformer = nn.Transformer(d_model=emb_size, nhead=nhead,
                                          num_encoder_layers=num_encoder_layers,
                                          num_decoder_layers=num_decoder_layers,
                                          dim_feedforward=dim_feedforward, dropout=dropout)
        self.generator = nn.Linear(emb_size, tgt_vocab_size)
        self.src_tok_emb = TokenEmbedding(src_vocab_size, emb_size)
        self.tgt_tok_emb = TokenEmbedding(tgt_vocab_size, emb_size)
        self.positional_encoding = PositionalEncoding(emb_size, dropout=dropout, maxlen=maxlen)

    def forward(self, src, trg, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask,
                memory_key_padding_mask):
        src_emb = self.positional_encoding(self.src_tok_emb(src))
        tgt_emb = self.positional_encoding(self.tgt_tok_emb(trg))
        outs = self.transformer(src_emb, tgt_emb, src_mask, tgt_mask, None,
                                src_padding_mask, tgt_padding_mask, memory_key_padding_mask)
        return self.generator(outs)

    def encode(self, src, src_mask):
        return self.transformer.encoder(self.positional_encoding(self.src_tok_emb(src)), src_mask)

    def decode(self, tgt, memory, tgt_mask):
        return self.transformer.decoder(self.positional_encoding(self.tgt_tok_emb(tgt)), memory, tgt_mask)


def square_mask(n):
    return torch.triu(torch.full((n, n), float("-inf")), diagonal=1)


def train_transformer(pairs, test, out):
    torch.manual_seed(1)
    keep = [(s, t) for s, t in pairs if 0 < len(s) <= 40 and 0 < len(t) <= 40]
    chars_src = sorted({c for s, _ in keep for c in s})
    chars_tgt = sorted({c for _, t in keep for c in t})
    itos_src, itos_tgt = T_SPECIALS + chars_src, T_SPECIALS + chars_tgt
    stoi_src = {c: i for i, c in enumerate(itos_src)}
    stoi_tgt = {c: i for i, c in enumerate(itos_tgt)}

    def enc(text, stoi):
        return [BOS_IDX] + [stoi.get(c, UNK_IDX) for c in text] + [EOS_IDX]

    maxlen = 64
    model = Seq2SeqTransformer(2, 2, 32, 4, len(itos_src), len(itos_tgt), 64, 0.1, maxlen)
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD_IDX)
    steps = int(os.environ.get("STEPS", "300"))
    g = torch.Generator().manual_seed(2)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(keep), (32,), generator=g).tolist()
        src = nn.utils.rnn.pad_sequence([torch.tensor(enc(keep[i][0], stoi_src)) for i in idx], padding_value=PAD_IDX)
        tgt = nn.utils.rnn.pad_sequence([torch.tensor(enc(keep[i][1], stoi_tgt)) for i in idx], padding_value=PAD_IDX)
        tgt_in = tgt[:-1]
        src_mask = torch.zeros((src.shape[0], src.shape[0])).bool()
        tgt_mask = square_mask(tgt_in.shape[0])
        logits = model(src, tgt_in, src_mask, tgt_mask, (src == PAD_IDX).T, (tgt_in == PAD_IDX).T, (src == PAD_IDX).T)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tgt[1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"transformer step {step} loss {loss.item():.3f}", file=sys.stderr)
    model.eval()
    os.makedirs(out, exist_ok=True)
    torch.save({"epoch": 1, "loss": float(loss.item()), "model_state_dict": model.state_dict()},
               os.path.join(out, "transformer.pt"))

    m64 = Seq2SeqTransformer(2, 2, 32, 4, len(itos_src), len(itos_tgt), 64, 0.0, maxlen).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.eval()

    def start(text):
        src = torch.tensor(enc(text, stoi_src)).reshape(-1, 1)
        memory = m64.encode(src, torch.zeros((src.shape[0], src.shape[0])).bool())
        return {"memory": memory, "ys": None}

    def step(prev, state, rows):
        if isinstance(state, tuple):  # ("select", rows, state)
            _, sel, inner = state
            state = {"memory": inner["memory"], "ys": inner["ys"][:, sel]}
        memory, ys = state["memory"], state["ys"]
        new = torch.tensor(prev).reshape(1, -1)
        ys = new if ys is None else torch.cat([ys, new], dim=0)
        mem = memory.expand(-1, ys.shape[1], -1)
        h = m64.decode(ys, mem, square_mask(ys.shape[0]).double())
        logits = m64.generator(h[-1])
        return logits, {"memory": memory, "ys": ys}

    max_len = 48
    write_outputs(out, test, start, step, BOS_IDX, EOS_IDX, max_len, itos_tgt, T_SPECIALS, "",
                  lambda s: enc(s, stoi_src)[1:-1], 2)
    write_vocab(out, itos_src, itos_tgt)


# ---------------------------------------------------------------- the GRU tutorial

SOS_TOKEN, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN = 0, 1, 2, 3
G_SPECIALS = ["SOS", "EOS", "PAD", "UNK"]


def normalize(s):
    s = s.lower().strip()
    s = re.sub(r"([.!?,:;])", r" \1", s)
    return re.sub(r"\s+", " ", s).strip()


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size, dropout_p=0.1):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input, lengths):
        embedded = self.dropout(self.embedding(input))
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        output, hidden = self.gru(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True)
        return output, hidden


class DecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward_step(self, input, hidden):
        output = self.embedding(input)
        output = F.relu(output)
        output, hidden = self.gru(output, hidden)
        return self.out(output), hidden


def train_gru(pairs, test, out):
    torch.manual_seed(3)
    keep = [(normalize(s), normalize(t)) for s, t in pairs]
    keep = [(s, t) for s, t in keep if 0 < len(s.split()) <= 10 and 0 < len(t.split()) <= 10]
    words = 400

    def vocab(texts):
        counts = {}
        for text in texts:
            for w in text.split():
                counts[w] = counts.get(w, 0) + 1
        best = sorted(counts, key=lambda w: (-counts[w], w))[: words - len(G_SPECIALS)]
        return G_SPECIALS + sorted(best)

    itos_src, itos_tgt = vocab(s for s, _ in keep), vocab(t for _, t in keep)
    stoi_src = {w: i for i, w in enumerate(itos_src)}
    stoi_tgt = {w: i for i, w in enumerate(itos_tgt)}

    def enc(text, stoi):
        return [stoi.get(w, UNK_TOKEN) for w in text.split()] + [EOS_TOKEN]

    hidden = 48
    encoder = EncoderRNN(len(itos_src), hidden)
    decoder = DecoderRNN(hidden, len(itos_tgt))
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    steps = int(os.environ.get("STEPS", "400"))
    g = torch.Generator().manual_seed(4)
    encoder.train()
    decoder.train()
    for step in range(steps):
        idx = torch.randint(len(keep), (48,), generator=g).tolist()
        srcs = [torch.tensor(enc(keep[i][0], stoi_src)) for i in idx]
        tgts = [torch.tensor(enc(keep[i][1], stoi_tgt)) for i in idx]
        lengths = torch.tensor([len(s) for s in srcs])
        src = nn.utils.rnn.pad_sequence(srcs, batch_first=True, padding_value=PAD_TOKEN)
        tgt = nn.utils.rnn.pad_sequence(tgts, batch_first=True, padding_value=PAD_TOKEN)
        _, h = encoder(src, lengths)
        prev = torch.full((len(idx), 1), SOS_TOKEN)
        tgt_in = torch.cat([prev, tgt[:, :-1]], dim=1)
        outs = []
        for t in range(tgt.shape[1]):  # teacher forcing
            o, h = decoder.forward_step(tgt_in[:, t : t + 1], h)
            outs.append(o)
        logits = torch.cat(outs, dim=1)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=PAD_TOKEN)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"gru step {step} loss {loss.item():.3f}", file=sys.stderr)
    encoder.eval()
    decoder.eval()
    os.makedirs(out, exist_ok=True)
    torch.save(encoder.state_dict(), os.path.join(out, "encoder.pt"))
    torch.save(decoder.state_dict(), os.path.join(out, "decoder.pt"))

    encoder.double()
    decoder.double()

    def start(text):
        src = torch.tensor(enc(text, stoi_src)).reshape(1, -1)
        _, h = encoder(src, torch.tensor([src.shape[1]]))
        return h

    def step(prev, h, rows):
        if isinstance(h, tuple):  # ("select", rows, h)
            _, sel, inner = h
            h = inner[:, sel]
        o, h = decoder.forward_step(torch.tensor(prev).reshape(-1, 1), h)
        return o[:, 0], h

    with torch.no_grad():
        write_outputs(out, test, start, step, SOS_TOKEN, EOS_TOKEN, 20, itos_tgt, G_SPECIALS, " ",
                      lambda s: enc(s, stoi_src)[:-1], 1, normalize)
    write_vocab(out, itos_src, itos_tgt)


# ---------------------------------------------------------------- outputs


def to_text(ids, itos, specials, sep, unk):
    words = [("<unk>" if i == unk else itos[i]) for i in ids if itos[i] not in specials or i == unk]
    text = sep.join(words)
    return text[1:] if text.startswith(" ") else text


def write_outputs(out, test, start, step, bos, eos, max_len, itos, specials, sep, encode, wrap, prep=None):
    """`encode`: a source's ids without the tokens the model wraps it in (`wrap` of them)."""
    unk = specials.index("<unk>") if "<unk>" in specials else specials.index("UNK")
    sources = []
    for s, _ in test:
        s = prep(s) if prep else s
        if s and s not in sources and len(encode(s)) + wrap <= 30:
            sources.append(s)
        if len(sources) == SENTENCES:
            break
    rows = []
    with torch.no_grad():
        for s in sources:
            g = greedy(step, start(s), bos, eos, max_len)
            b = beam(step, start(s), bos, eos, max_len)
            rows.append({"source": s, "source_ids": encode(s), "greedy_ids": g, "beam_ids": b,
                         "greedy": to_text(g, itos, specials, sep, unk),
                         "beam": to_text(b, itos, specials, sep, unk)})
    json.dump({"beam": BEAM, "alpha": ALPHA, "max_len": max_len, "sentences": rows},
              open(os.path.join(out, "expected.json"), "w"), ensure_ascii=False, indent=1)
    check = rows[:CHECK]
    json.dump({"sources": [r["source_ids"] for r in check], "greedy": [r["greedy_ids"] for r in check],
               "max_len": max_len},
              open(os.path.join(out, "check.json"), "w"), indent=None)


def write_vocab(out, src, tgt):
    json.dump({"source": src, "target": tgt}, open(os.path.join(out, "vocab.json"), "w"),
              ensure_ascii=False, indent=0)


def main():
    pairs, test = read_pairs(TRAIN), read_pairs(TEST) + read_pairs(DEV)
    which = os.environ.get("MODELS", "transformer,gru").split(",")
    if "transformer" in which:
        short = [(s, t) for s, t in test if len(s) <= 28]
        train_transformer(pairs, short, os.path.join(OUT, "transformer"))
    if "gru" in which:
        train_gru(pairs, test, os.path.join(OUT, "gru"))


if __name__ == "__main__":
    main()
