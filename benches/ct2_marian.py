"""CTranslate2's side of `benches/vs-ct2-marian.sh`: the work of `attend bench translate`.

    python benches/ct2_marian.py --model-dir CT2_DIR --input SOURCES.jsonl [--threads 1] [--batch 32]
        [--beam 4] [--max-len 256] [--warmup 1] [--reps 3] [--output OUT.jsonl]

CT2_DIR: a model converted by CTranslate2's own converter (`ct2-opus-mt-converter`), float32.
SOURCES.jsonl: `attend bench translate --output`'s lines; their `source` pieces are the input, so
that both systems translate the very same token sequences (tokenization is outside both timings).

Untimed: loading the model and the input. One pass: the sentences in file order, in batches of
`--batch`, one `translate_batch` call per batch (`beam_size`, `max_decoding_length = --max-len`,
length penalty 1, as the imported model's Hugging Face search; `</s>` appended to the source by
the model's config). `--warmup` passes, then `--reps` passes each timed whole; tokens/s = output
tokens of one pass (`</s>` not counted) ÷ its time. Prints one JSON object with the fields of
`attend bench translate`; `--output` writes the last pass's `{"source", "output"}` pieces.
"""

import argparse
import json
import os
import statistics
import time

import ctranslate2

BUSY_NAMES = {"rustc", "cargo", "cc1", "cc1plus", "ld", "ld.lld", "rust-lld", "make", "cmake"}


def busy_processes():
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name in BUSY_NAMES:
            found.add(name)
    return found


def cpu_snapshot():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal
    own = os.times()
    return time.perf_counter(), busy, (own.user + own.system) * os.sysconf("SC_CLK_TCK")


def foreign_cpu(a, b):
    """Share of the machine's CPU used by other processes between two snapshots."""
    dt = b[0] - a[0]
    other = (b[1] - a[1]) - (b[2] - a[2])
    share = max(0.0, other / (dt * os.sysconf("SC_CLK_TCK") * os.cpu_count()))
    return round(share, 3)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--output")
    a = ap.parse_args()

    with open(a.input, encoding="utf-8") as f:
        sources = [json.loads(line)["source"] for line in f if line.strip()]
    translator = ctranslate2.Translator(a.model_dir, device="cpu", compute_type="float32",
                                        intra_threads=a.threads, inter_threads=1)
    batches = [sources[i:i + a.batch] for i in range(0, len(sources), a.batch)]
    options = dict(beam_size=a.beam, num_hypotheses=1, max_decoding_length=a.max_len,
                   length_penalty=1.0)

    def one_pass():
        return [r.hypotheses[0] for b in batches for r in translator.translate_batch(b, **options)]

    for _ in range(max(1, a.warmup)):
        outputs = one_pass()
    busy = busy_processes()
    times = []
    snap0 = cpu_snapshot()
    for _ in range(a.reps):
        t0 = time.perf_counter()
        outputs = one_pass()
        times.append((time.perf_counter() - t0) * 1e3)
    snap1 = cpu_snapshot()
    busy |= busy_processes()
    tokens = sum(len(o) for o in outputs)
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            for s, o in zip(sources, outputs):
                f.write(json.dumps({"source": s, "output": o}, ensure_ascii=False) + "\n")
    median = statistics.median(times)
    print(json.dumps({
        "bench": "translate", "impl": "ctranslate2", "ctranslate2": ctranslate2.__version__,
        "model": a.model_dir, "threads": a.threads, "beam": a.beam, "batch": a.batch,
        "max_len": a.max_len, "sentences": len(sources),
        "source_tokens": sum(len(s) for s in sources), "output_tokens": tokens,
        "warmup": a.warmup, "step_ms_min": min(times), "step_ms_median": median,
        "step_ms_max": max(times), "n": len(times),
        "tokens_per_s_median": tokens / (median * 1e-3),
        "tokens_per_s_best": tokens / (min(times) * 1e-3),
        "peak_rss_mb": peak_rss_mb(), "foreign_cpu": foreign_cpu(snap0, snap1),
        "busy_procs": sorted(busy), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
    }), flush=True)


if __name__ == "__main__":
    main()
