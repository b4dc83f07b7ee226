"""The Python package against the ``attend`` command line on the same run: every function, the
errors on bad input, Ctrl-C, and the GIL released while the engine works."""

import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import attend
from conftest import TINY, reverse_sources

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def translator(run_dir):
    return attend.Translator(run_dir)


def test_train_returns_the_runs_summary(run_dir):
    summary = json.loads((run_dir / "python-summary.json").read_text())
    assert summary == json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == TINY["train"]["max_steps"]
    assert summary["test_sentences"] == TINY["data"]["reverse_sizes"][2]


def test_translate_batch_equals_the_cli(translator, run_dir, cli):
    sources = reverse_sources(50) + ["", "  3   4  "]
    expected = cli("translate", "--model", run_dir, stdin="\n".join(sources) + "\n").stdout.splitlines()
    got = [r.hypotheses[0] for r in translator.translate_batch(sources)]
    assert got == expected
    # A beam other than the run's, as `--beam`.
    expected = cli("translate", "--model", run_dir, "--beam", 3, stdin="\n".join(sources) + "\n").stdout.splitlines()
    assert [r.hypotheses[0] for r in translator.translate_batch(sources, beam_size=3)] == expected


def test_pre_tokenized_sources_give_token_lists(translator):
    sources = reverse_sources(10, seed=1)
    text = translator.translate_batch(sources)
    tokenized = [translator.tokenize(s) for s in sources]
    assert tokenized[0][0].startswith("▁")
    tokens = translator.translate_batch(tokenized)
    assert [r.hypotheses[0] for r in tokens] == [r.tokens for r in text]
    assert all(isinstance(r.hypotheses[0], str) for r in text)


def test_scores_and_attention(translator):
    sources = reverse_sources(8, seed=2)
    results = translator.translate_batch(sources, return_scores=True, return_attention=True)
    for src, r in zip(sources, results):
        (a,) = r.attention
        assert a.dtype == np.float32
        # One row per emitted token (and </s>), one column per source token.
        assert a.shape == (len(r.target_labels), len(src.split()))
        assert r.target_labels[: len(r.tokens)] == [t.lstrip("▁") for t in r.tokens]
        np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
        (s,) = r.scores
        assert np.isfinite(s) and s <= 0
    plain = translator.translate_batch(sources)
    assert plain[0].scores == [] and plain[0].attention == []


def test_attention_equals_explain_weights(translator):
    """Greedy decoding (the run's beam 1) records the weights `explain` shows, step by step."""
    source = reverse_sources(1, seed=3)[0]
    (r,) = translator.translate_batch([source], return_attention=True)
    ex = translator.explain(source)
    assert [s.emitted for s in ex.steps] == r.target_labels
    np.testing.assert_array_equal(ex.weights, r.attention[0])


def test_explain_equals_the_cli_json(translator, run_dir, cli):
    for sentence in ["1 2 3 4", "17  5 42 "]:
        expected = json.loads(cli("explain", "--model", run_dir, "--json", sentence).stdout)
        ex = translator.explain(sentence)
        got = ex.to_dict()
        for step in got["steps"] + expected["steps"]:
            step["scores"] = np.float32(step["scores"]).tolist()
            step["weights"] = np.float32(step["weights"]).tolist()
        assert got == expected
        assert ex.steps[0].scores.dtype == np.float32


def test_translate_file_equals_the_cli(translator, run_dir, cli, tmp_path):
    sources = reverse_sources(30, seed=4)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(sources) + "\n")
    out = tmp_path / "out.txt"
    assert translator.translate_file(src, out) == len(sources)
    expected = cli("translate", "--model", run_dir, stdin=src.read_text()).stdout
    assert out.read_text() == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".translate-")] == []


def test_score_equals_the_cli(tmp_path, cli):
    hyps = ["le chat est sur le tapis", "il pleut", "un deux trois"]
    refs = ["le chat est assis sur le tapis", "il pleut beaucoup", "un deux trois"]
    (tmp_path / "h").write_text("\n".join(hyps) + "\n")
    (tmp_path / "r").write_text("\n".join(refs) + "\n")
    expected = json.loads(cli("score", "--hyp", tmp_path / "h", "--ref", tmp_path / "r").stdout)
    got = attend.score(hyps, refs)
    assert {k: got[k] for k in expected} == expected
    assert got["bleu_signature"] == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    assert got["chrf_signature"] == "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        attend.score(hyps[:2], refs)


def test_heat_maps_inline_and_in_files(translator, tmp_path):
    (r,) = translator.translate_batch(["1 2 3 4 5"], return_attention=True)
    png = r._repr_png_()
    assert png.startswith(PNG_MAGIC)
    svg = r.heat_map()._repr_svg_()
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg
    assert translator.explain("1 2 3")._repr_png_().startswith(PNG_MAGIC)
    w = np.array([[0.9, 0.1], [0.2, 0.8]])
    image = attend.plot_attention(w, ["a", "b"], ["x", "y"], path=tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes() == image.png()
    attend.plot_attention(w, ["a", "b"], ["x", "y"], path=tmp_path / "m.svg")
    assert (tmp_path / "m.svg").read_text() == image.svg()
    # Different weights, a different picture.
    assert attend.plot_attention(w[::-1], ["a", "b"], ["x", "y"]).png() != image.png()
    with pytest.raises(ValueError, match="do not match"):
        attend.plot_attention(w, ["a"], ["x", "y"])
    with pytest.raises(ValueError, match="not a finite number"):
        attend.plot_attention(np.array([[np.nan]]), ["a"], ["x"])
    with pytest.raises(attend.AttendError, match=r"\*\.png or \*\.svg"):
        attend.plot_attention(w, ["a", "b"], ["x", "y"], path=tmp_path / "m.gif")


def test_missing_model_dir_has_the_clis_message(tmp_path, cli):
    missing = tmp_path / "nothing-here"
    p = cli("translate", "--model", missing, stdin="1 2\n", check=False)
    assert p.returncode != 0
    with pytest.raises(attend.AttendError) as e:
        attend.Translator(missing)
    assert p.stderr.strip() == f"error: {e.value}"


def test_bad_config_has_the_clis_message(tmp_path, cli):
    config = tmp_path / "bad.toml"
    config.write_text('name = "bad"\n[model]\nkind = "rnn"\n[model.rnn]\ncell = "tanh"\n')
    p = cli("train", config, "--out", tmp_path / "run", check=False)
    with pytest.raises(attend.AttendError) as e:
        attend.train(config, tmp_path / "run2", progress=False)
    assert p.stderr.strip() == f"error: {e.value}".strip()


def test_bad_input_is_refused(translator):
    with pytest.raises(ValueError, match="the batch is empty"):
        translator.translate_batch([])
    with pytest.raises(TypeError, match="source 1: expected a string or a list of token strings, got int"):
        translator.translate_batch(["1 2", 3])
    with pytest.raises(TypeError, match="source 0: a pre-tokenized source is a list of strings"):
        translator.translate_batch([["▁1", 2]])
    with pytest.raises(TypeError, match="not one string"):
        translator.translate_batch("1 2 3")
    with pytest.raises(ValueError, match='source 0: token "cat" is not in the model'):
        translator.translate_batch([["▁1", "cat"]])
    long = " ".join(["7"] * 10_000)
    with pytest.raises(ValueError, match="source 0: more than .* 1024 source tokens this model reads"):
        translator.translate_batch([long])
    with pytest.raises(ValueError, match="source 0: 10000 tokens, more than the 1024"):
        translator.translate_batch([long.split()])
    with pytest.raises(ValueError, match="beam_size = 0"):
        translator.translate_batch(["1"], beam_size=0)
    with pytest.raises(ValueError, match="compute_type 'int8'"):
        attend.Translator(translator.model_dir, compute_type="int8")
    with pytest.raises(TypeError, match="expected a string"):
        translator.explain(["1"])
    with pytest.raises(attend.AttendError, match="has no tokens"):
        translator.explain("   ")


def test_max_decoding_length_bounds_the_output(translator):
    (r,) = translator.translate_batch([reverse_sources(1, seed=5, lo=20)[0]], max_decoding_length=3)
    assert len(r.tokens) <= 3


def test_ctrl_c_stops_a_translation(translator):
    sources = reverse_sources(20_000, seed=6)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            translator.translate_batch(sources)
    finally:
        timer.cancel()
    # The translator still works afterwards.
    assert translator.translate_batch(["1 2"])[0].hypotheses[0] is not None


def test_ctrl_c_stops_training_with_a_checkpoint_that_resumes(tmp_path):
    out = tmp_path / "run"
    events = []

    def progress(kind, a, b):
        events.append((kind, a, b))
        if kind == "advance" and a == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        attend.train(TINY, out, progress=progress, train={"max_steps": 30})
    state = json.loads((out / "state.json").read_text())
    assert 5 <= state["step"] < 30
    assert events[0][0] == "say" and ("start", 0, 30) in events
    summary = attend.train(None, out, resume=True, progress=False)
    assert summary["steps"] == 30


def test_the_gil_is_released_while_translating(translator):
    """Another Python thread runs while the engine translates. The translator stays on the thread
    that loaded it, so this thread translates and the other counts; with a long switch interval
    the counter runs only when the translating thread lets go of the GIL itself."""
    sources = reverse_sources(2000, seed=7)
    go, done = threading.Event(), threading.Event()
    ticks = []

    def count():
        go.wait()
        while not done.is_set():
            ticks.append(1)
            time.sleep(0)

    counter = threading.Thread(target=count)
    counter.start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        go.set()
        translator.translate_batch(sources)
        seen = len(ticks)
        done.set()
    finally:
        sys.setswitchinterval(interval)
        done.set()
        counter.join()
    assert seen > 0


def test_train_prints_progress(tmp_path, capfd):
    attend.train(TINY, tmp_path / "run", train={"max_steps": 4, "valid_every": 2})
    err = capfd.readouterr().err
    assert "data: 1000 train / 20 dev / 20 test pairs" in err
    assert "4/4" in err
