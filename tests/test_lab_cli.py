"""`tinygrad-gpt lab` end to end: --quick runs every mistake, reproduces each, and writes a
self-contained index.html (summary first, one section per mistake) and a results.json holding
every metric; --only, --corpus, --seed and bad arguments (a corpus too small) behave, and a
failed experiment's reason reaches the console."""
import json
import re
import subprocess
import sys

import pytest

from tinygrad_gpt.cli import main
from tinygrad_gpt.data import generated_corpus
from tinygrad_gpt.lab import MISTAKES, unregister
from tinygrad_gpt.lab.base import EVIDENCE, HARM, MECHANISM, Mistake, register
from tinygrad_gpt.lab.common import min_corpus_chars
from tinygrad_gpt.lab.runner import jsonable, ordered_mistakes, select

SLUGS = ["norm", "residual", "ffn", "tying", "ln-axis", "final-norm", "positions",
         "padding-mask", "argmax", "vocabulary", "kv-cache"]
N = len(SLUGS)
# the kind of evidence each mistake's quick experiment gives (seed 0), from its metrics
QUICK_KINDS = dict(zip(SLUGS, [MECHANISM, HARM, MECHANISM, MECHANISM, HARM, HARM, MECHANISM,
                               HARM, MECHANISM, MECHANISM, HARM]))


@pytest.fixture(scope="module")
def quick_lab(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    proc = subprocess.run([sys.executable, "-m", "tinygrad_gpt.cli", "lab", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=600)
    return proc, out


@pytest.mark.slow
def test_quick_lab_reproduces_every_mistake(quick_lab):
    proc, out = quick_lab
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [m.slug for m in ordered_mistakes()] == SLUGS
    doc = json.loads((out / "results.json").read_text())
    assert doc["quick"] is True and doc["seed"] == 0 and doc["total"] == N
    entries = doc["mistakes"]
    assert [e["number"] for e in entries] == list(range(1, N + 1))
    not_reproduced = [e["slug"] for e in entries if not e["reproduced"]]
    assert not not_reproduced, [(e["slug"], e["verdict"]) for e in entries if not e["reproduced"]]
    assert doc["reproduced"] == N and doc["failed"] == 0
    # every result says what kind of evidence it is (quick mode, seed 0)
    kinds = {e["slug"]: e["kind"] for e in entries}
    assert kinds == QUICK_KINDS
    assert doc["kinds"] == {k: list(QUICK_KINDS.values()).count(k) for k in EVIDENCE}
    for e in entries:
        assert e["slug"] == MISTAKES[e["number"]].slug
        assert {"wrong", "fixed"} <= set(e["metrics"])
        # the symptom is a real metric measured on both sides
        assert e["symptom"] in e["metrics"]["wrong"] and e["symptom"] in e["metrics"]["fixed"]
        assert e["verdict"] and e["title"] and e["settings"] == MISTAKES[e["slug"]].tiers["quick"]
    # the terminal shows one line per mistake, progress inside each (steps, elapsed, time
    # left) and the summary table, one row per mistake
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("[") for line in lines) == N
    # tqdm's bar ("50/50 [00:01<00:00") or the plain line ("50/50 steps, 1s elapsed, about")
    assert re.search(r"norm: post.*50/50 (\[\d\d:\d\d<\d\d:\d\d|steps, \S+ elapsed, about)",
                     proc.stdout + proc.stderr)
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "mistake"])
    rows = lines[header + 2:header + 2 + N]
    assert [r.split()[0] for r in rows] == [str(n) for n in range(1, N + 1)]
    assert [next(k for k in EVIDENCE if k in r) for r in rows] == list(QUICK_KINDS.values())
    # the symptom in words, never the metric's name
    assert "gradient spread across blocks at init, 22x" in rows[0]
    assert "grad_span_init" not in "\n".join(rows)
    assert "5 harm reproduced, 6 mechanism shown in" in proc.stdout


@pytest.mark.slow
def test_quick_lab_report_has_summary_then_a_section_per_mistake(quick_lab):
    proc, out = quick_lab
    html = (out / "index.html").read_text()
    sections = re.findall(r'<section id="([^"]+)">\s*<h2>([^<]+)</h2>', html)
    titles = [t for _, t in sections]
    assert titles[0] == "Summary" and len(titles) == N + 1
    for n, title in enumerate(titles[1:], 1):
        assert title.startswith(f"{n}. ")
    for anchor, _ in sections:                       # every section is in the contents
        assert f'href="#{anchor}"' in html
    summary = html.split("<section", 2)[1]
    assert summary.count("<tr>") == N + 1            # header + one row per mistake
    for slug in SLUGS:
        assert slug in summary
    bodies = html.split("<section")[2:]
    for body, slug in zip(bodies, SLUGS):
        m = MISTAKES[slug]
        assert f"Verdict ({QUICK_KINDS[slug]}: " in body
        assert '<table class="metrics">' in body and "wrong" in body and "fixed" in body
        assert "<img" in body or "<svg" in body      # every mistake is drawn
        assert m.explanation.split()[0] in body
    # self-contained: no file or network references, and nothing half-written left over
    assert not re.search(r'(src|href)="(?!#|data:)', html)
    assert not list(out.glob(".*.tmp"))


def test_only_seed_and_corpus(tmp_path, capsys):
    corpus = tmp_path / "numbers.txt"
    corpus.write_text(generated_corpus(3000))
    code = main(["lab", "--quick", "--only", "5,residual", "--seed", "3", "--corpus",
                 str(corpus), "--out", str(tmp_path / "out")])
    assert code == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [e["slug"] for e in doc["mistakes"]] == ["residual", "ln-axis"]   # lab order
    assert doc["seed"] == 3 and doc["corpus"] == str(corpus)
    # a different text (vocabulary of ~25 characters) and seed: the symptoms still show
    assert doc["reproduced"] == 2 and "2 harm reproduced in" in capsys.readouterr().out
    res, ln = (e["metrics"] for e in doc["mistakes"])
    assert res["wrong"]["grad_orders_of_magnitude"] > 3
    assert ln["fixed"]["batch_dependence"] == 0.0 < ln["wrong"]["batch_dependence"]


def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys):
    assert main(["lab", "--only", "nonsense", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nonsense" in err and "residual" in err
    assert main(["lab", "--corpus", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err


@pytest.mark.parametrize("chars", [0, 100])
def test_a_corpus_too_small_is_refused_before_anything_runs(tmp_path, capsys, chars):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("ab" * (chars // 2))
    need = min_corpus_chars(True)
    assert need == 2560                                 # 80 x block size 32
    assert main(["lab", "--quick", "--corpus", str(corpus), "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr()
    assert out.err.strip() == (f"tinygrad-gpt lab: corpus {corpus} has {chars} characters; the "
                               f"lab needs at least 2,560 in --quick (a tenth is held out, and "
                               f"it must hold windows of twice the block size)")
    assert out.out == "" and not (tmp_path / "o").exists()
    assert min_corpus_chars(False) == 5120              # full mode: block size 64


def test_a_failed_experiment_prints_its_reason(tmp_path, capsys):
    def explode(settings, seed, data):
        raise ArithmeticError("the corpus has no spaces\nmore detail")

    register(Mistake(99, "test-explodes", "explodes", "x", {}, {}, {"quick": {}, "full": {}},
                     explode, lambda m, c: (True, ""), "v"))
    try:
        code = main(["lab", "--quick", "--only", "test-explodes", "--out", str(tmp_path)])
    finally:
        unregister("test-explodes")
    out = capsys.readouterr()
    assert code == 1
    assert "FAILED in" in out.out and "ArithmeticError: the corpus has no spaces" in out.out
    assert out.err.splitlines()[-1] == "  test-explodes: ArithmeticError: the corpus has no spaces"


def test_select_and_jsonable():
    assert [m.number for m in select("final-norm,1")] == [1, 6]
    assert [m.number for m in select(None)] == sorted(k for k in MISTAKES if isinstance(k, int))
    with pytest.raises(ValueError, match="no mistake '99'; choose from 1/norm, 2/residual"):
        select(["99"])
    assert jsonable({"a": float("inf"), "b": [float("nan")], 3: (1, 2.5)}) == \
        {"a": "inf", "b": ["nan"], "3": [1, 2.5]}
