"""Throughput of ``Translator.translate_batch`` against ``attend translate`` on the same run and
the same 1,000 sentences, in interleaved rounds; prints each round and the medians as JSON lines.

    python crates/python/bench/throughput.py RUN_DIR [--rounds 7] [--threads N] [--bin target/release/attend]

Both sides load the run and translate: the command line as one process (start, load, translate,
write), Python as ``Translator(RUN_DIR)`` then ``translate_batch`` in this process (also timed
alone). Sentences: the reverse task's (integer words, lengths 1–25, seeded), or ``--input FILE``.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time

import attend


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--input")
    ap.add_argument("--bin", default=os.path.join("target", "release", "attend"))
    a = ap.parse_args()
    if a.input:
        with open(a.input, encoding="utf-8") as f:
            lines = f.read().splitlines()[: a.sentences]
    else:
        rng = random.Random(0)
        lines = [
            " ".join(str(rng.randint(0, 50)) for _ in range(rng.randint(1, 25)))
            for _ in range(a.sentences)
        ]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    cmd = [a.bin, "translate", "--model", a.run_dir]
    if a.threads:
        cmd[1:1] = ["--threads", str(a.threads)]
    cli_times, py_times, py_batch_times = [], [], []
    expected = None
    for r in range(a.rounds):
        with open(path, encoding="utf-8") as stdin:
            t = time.perf_counter()
            out = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, check=True).stdout
            cli_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        tr = attend.Translator(a.run_dir, threads=a.threads)
        t_batch = time.perf_counter()
        got = [x.hypotheses[0] for x in tr.translate_batch(lines)]
        end = time.perf_counter()
        py_times.append(end - t)
        py_batch_times.append(end - t_batch)
        expected = out.splitlines()
        if got != expected:
            raise SystemExit("Python and the command line translated differently")
        print(json.dumps({"round": r + 1, "cli_s": cli_times[-1], "python_s": py_times[-1], "python_batch_s": py_batch_times[-1]}))
    os.unlink(path)
    cli, py, batch = (statistics.median(x) for x in (cli_times, py_times, py_batch_times))
    print(json.dumps({
        "sentences": len(lines),
        "threads": attend.threads(),
        "cli_median_s": round(cli, 4),
        "python_median_s": round(py, 4),
        "python_batch_median_s": round(batch, 4),
        "cli_sentences_per_s": round(len(lines) / cli, 1),
        "python_sentences_per_s": round(len(lines) / py, 1),
        "python_over_cli_time": round(py / cli, 3),
    }))


if __name__ == "__main__":
    main()
