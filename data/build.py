#!/usr/bin/env python3
"""Rebuild the bundled corpora under data/ from the extracted TSVs (see data/README.md).

Usage: python3 data/build.py [SOURCE_DIR]   (default SOURCE_DIR: ../shared/data next to the repo)

Writes, each a gzip of UTF-8 lines "source<TAB>target" (no header):
  data/en-fr/{train,dev,test}.tsv.gz       Wesnoth en-fr with its split; train also gets the
                                           emoji-label and Tux Paint caption en-fr train pairs
  data/en-es-bible/{train,dev,test}.tsv.gz KJV / Reina-Valera 1909 verses, split by book
The output is deterministic (gzip mtime 0, fixed order), so a rebuild gives identical bytes.
"""
import gzip
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "data")
SPLITS = ("train", "dev", "test")


def rows(name, header):
    with open(os.path.join(SRC, name), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if header:
        lines = lines[1:]
    return [line.split("\t") for line in lines]


def clean(text):
    return " ".join(text.split())


def write(folder, split, pairs):
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)
    path = os.path.join(HERE, folder, f"{split}.tsv.gz")
    body = "".join(f"{s}\t{t}\n" for s, t in pairs).encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(body)
    print(f"{folder}/{split}.tsv.gz: {len(pairs)} pairs, {os.path.getsize(path)} bytes")


def main():
    # English -> French: Wesnoth (split, domain, en, fr).
    fr = {s: [] for s in SPLITS}
    for split, _domain, en, fr_text in rows("wesnoth.en-fr.tsv", header=False):
        fr[split].append((clean(en), clean(fr_text)))
    held_out = {en for s in ("dev", "test") for en, _ in fr[s]}
    # Extra train-only pairs: emoji labels (split, image, category, en, fr, de, es) and
    # Tux Paint captions (split, image, en, fr, de, es), their own train split only; exact
    # duplicates and any English side that occurs in dev/test are dropped.
    seen = set(fr["train"])
    extra = [(r[3], r[4]) for r in rows("emoji.captions.tsv", header=True) if r[0] == "train"]
    extra += [(r[2], r[3]) for r in rows("tuxpaint.captions.tsv", header=True) if r[0] == "train"]
    for en, fr_text in extra:
        pair = (clean(en), clean(fr_text))
        if pair[0] and pair[1] and pair not in seen and pair[0] not in held_out:
            seen.add(pair)
            fr["train"].append(pair)
    for s in SPLITS:
        write("en-fr", s, fr[s])

    # English -> Spanish Bible (split, reference, en, es).
    es = {s: [] for s in SPLITS}
    for split, _ref, en, es_text in rows("bible.kjv-rv1909.en-es.tsv", header=False):
        es[split].append((clean(en), clean(es_text)))
    for s in SPLITS:
        write("en-es-bible", s, es[s])


if __name__ == "__main__":
    main()
