"""Makes the SentencePiece golden fixtures in crates/attend/tests/fixtures/sentencepiece/.

Trains two small models with the reference implementation (the `sentencepiece` package) on the
bundled English, French and Spanish text, and records what it does on held-out sentences:

- `unigram.spm`: unigram, 2000 pieces, the default `nmt_nfkc` normalizer, extra whitespace removed,
  no byte fallback (characters outside the vocabulary become `<unk>`);
- `bpe.spm`: BPE, 2000 pieces, `identity` normalizer, extra whitespace kept, byte fallback
  (characters outside the vocabulary become `<0xNN>` byte pieces);
- `unigram_user.spm`, `bpe_user.spm`: 1000 pieces, `identity` normalizer, no byte fallback, with
  user-defined symbols (kept whole), a control symbol, and a vocabulary restriction (every
  fourth multi-character piece marked UNUSED, as the C++ `SetVocabulary` does); the unigram one puts
  the whitespace after words (`treat_whitespace_as_suffix`);
- `golden.jsonl.gz`: one JSON object per sentence, `{"text", "unigram": {...}, "bpe": {...}}`, each
  model's entry holding `ids` (`encode(text)`), `decode_ids` (`decode(ids)`) and, where there
  are any, `unk_pieces`: the pieces of `encode(text, out_type=str)` whose id is the unknown id
  (every other piece is the piece of its id, which the script asserts), and, where it differs
  from `decode_ids`, `decode_pieces` (`decode_pieces(pieces)`).

`golden_user.jsonl.gz` holds the same for the two `_user` models on every fourth sentence and on
all edited ones.

The sentences are the en-fr test set and the first 200 pairs of its dev set, the first 250 pairs of
the en-es-bible test set (both sides of each) and edited copies that add what the corpora lack: CJK, emoji, rare accents, full-width
and compatibility characters, combining marks, double, leading and trailing spaces, tabs, the `▁`
character itself, literal `<unk>` / `<s>`, empty and all-space lines.

Deterministic: training reads a fixed subset in a fixed order with one thread, and the gzip stream
has no time stamp, so a second run writes identical bytes (sentencepiece 0.2.x).

    bash tools/golden/make_sentencepiece.sh
"""

import argparse
import gzip
import io
import json
import os
import random

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read_pairs(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if "\t" in line]


def training_text(path):
    """Every third line of each training corpus, both sides, in file order."""
    lines = []
    for corpus in ("en-fr", "en-es-bible"):
        pairs = read_pairs(os.path.join(ROOT, "data", corpus, "train.tsv.gz"))
        for i, (src, tgt) in enumerate(pairs):
            if i % 3 == 0:
                lines += [src, tgt]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


EXTRAS = [
    "東京は日本の首都です。",
    "北京欢迎你",
    "한국어 문장입니다",
    "emoji 🙂👍🏽 and 🇫🇷 flags",
    "Ångström, ǅemal, ŉ, ẞ, Ŋ, Ħ, ő, ű, ș, ț",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
    "ﬁnal ﬂow ½ ² ™ №",
    "cafe\u0301 nai\u0308ve",
    "non\u00a0breaking\u2009thin\u3000ideographic",
    "zero\u200bwidth",
    "tab\tseparated\twords",
    "the ▁ marker ▁▁ itself",
    "<unk> and <s> and </s> literally",
    "",
    "   ",
    "\t",
    "Ελληνικά και Русский текст",
    "עברית ועربية",
    "Ω≈ç√∫˜µ≤≥÷",
    "Battle for Wesnoth<sep>la Bataille pour Wesnoth 😀 <2fr> nation",
]


def edited(sentences, rng):
    """Copies of some sentences with the characters and spacing the corpora lack."""
    out = list(EXTRAS)
    pieces = ["東京", "🙂", "ǅ", "Ｗ", "ﬁ", "e\u0301", "\u00a0", "  ", "\t", "▁", "中文", "👍🏽"]
    for s in rng.sample(sentences, 160):
        words = s.split(" ")
        kind = rng.randrange(5)
        if kind == 0:
            out.append("  " + s + "  ")
        elif kind == 1:
            out.append("  ".join(words))
        elif kind == 2:
            i = rng.randrange(len(words) + 1)
            out.append(" ".join(words[:i] + [rng.choice(pieces)] + words[i:]))
        elif kind == 3:
            out.append(" " + s.replace(" ", rng.choice([" ", "   ", " \t "])) + " ")
        else:
            i = rng.randrange(len(s) + 1)
            out.append(s[:i] + rng.choice(pieces) + s[i:])
    return out


def record(sp, text):
    pieces = sp.encode(text, out_type=str)
    ids = sp.encode(text)
    # The pieces are the ids' pieces except where the id is unknown: only those are stored.
    unk = [p for p, i in zip(pieces, ids) if i == sp.unk_id()]
    assert len(pieces) == len(ids)
    assert all(p == sp.id_to_piece(i) for p, i in zip(pieces, ids) if i != sp.unk_id())
    row = {"ids": ids, "decode_ids": sp.decode(ids)}
    if unk:
        row["unk_pieces"] = unk
    decoded = sp.decode_pieces(pieces)
    if decoded != row["decode_ids"]:
        row["decode_pieces"] = decoded
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "crates/attend/tests/fixtures/sentencepiece"))
    parser.add_argument("--work", default="/tmp/attend-spm-golden")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)

    corpus = os.path.join(args.work, "train.txt")
    n = training_text(corpus)
    common = dict(input=corpus, vocab_size=2000, character_coverage=0.9999, num_threads=1,
                  input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(args.work, "unigram"),
                                   model_type="unigram", **common)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(args.work, "bpe"), model_type="bpe",
                                   byte_fallback=True, normalization_rule_name="identity",
                                   remove_extra_whitespaces=False, **common)

    sentences = []
    for src, tgt in read_pairs(os.path.join(ROOT, "data/en-fr/test.tsv.gz")):
        sentences += [src, tgt]
    for src, tgt in read_pairs(os.path.join(ROOT, "data/en-fr/dev.tsv.gz"))[:200]:
        sentences += [src, tgt]
    for src, tgt in read_pairs(os.path.join(ROOT, "data/en-es-bible/test.tsv.gz"))[:250]:
        sentences += [src, tgt]
    sentences += edited(sentences, random.Random(17))

    user = dict(common, vocab_size=1000, normalization_rule_name="identity",
                user_defined_symbols=["Wesnoth", "<sep>", "😀", "ation"], control_symbols=["<2fr>"])
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(args.work, "unigram_user"),
                                   model_type="unigram", treat_whitespace_as_suffix=True, **user)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(args.work, "bpe_user"),
                                   model_type="bpe", **user)

    models = {}
    for name in ("unigram", "bpe", "unigram_user", "bpe_user"):
        with open(os.path.join(args.work, name + ".model"), "rb") as f:
            blob = f.read()
        if name.endswith("_user"):
            blob = restrict_vocabulary(blob)
        with open(os.path.join(args.out, name + ".spm"), "wb") as f:
            f.write(blob)
        models[name] = spm.SentencePieceProcessor(model_proto=blob)

    edited_from = len(sentences) - len(EXTRAS) - 160
    write_golden(os.path.join(args.out, "golden.jsonl.gz"), sentences,
                 {k: models[k] for k in ("unigram", "bpe")})
    user_sentences = [s for i, s in enumerate(sentences) if i % 4 == 0 or i >= edited_from]
    write_golden(os.path.join(args.out, "golden_user.jsonl.gz"), user_sentences,
                 {k: models[k] for k in ("unigram_user", "bpe_user")})
    print(f"trained on {n} lines; wrote {len(sentences)} and {len(user_sentences)} sentences "
          f"to {args.out}")


def restrict_vocabulary(blob):
    """Marks every fourth multi-character normal piece UNUSED (what the C++ `SetVocabulary` does
    to the pieces outside a vocabulary)."""
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(blob)
    normal = sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL
    unused = sentencepiece_model_pb2.ModelProto.SentencePiece.UNUSED
    for i, piece in enumerate(proto.pieces):
        if piece.type == normal and len(piece.piece) > 1 and i % 4 == 0:
            piece.type = unused
    return proto.SerializeToString()


def write_golden(path, sentences, models):
    buf = io.StringIO()
    for text in sentences:
        row = {"text": text}
        for name, sp in models.items():
            row[name] = record(sp, text)
        buf.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
            gz.write(buf.getvalue().encode("utf-8"))


if __name__ == "__main__":
    main()
