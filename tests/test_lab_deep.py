"""The deep tier (`lab --deep`): each deep experiment of mistakes 1, 2, 3 and 6 runs through
`run_task` at a reduced size (settings override) and returns its published result and a kind
of evidence consistent with its metrics; the verdicts decide the kind by their stated rules;
the command skips mistakes without a deep experiment with a line saying so."""
import json
import math

import numpy as np
import pytest

from tinygrad_gpt.cli import main
from tinygrad_gpt.lab import (EVIDENCE, HARM, MECHANISM, MISTAKES, NOT_SEEN, Deep, Measured,
                              Mistake, Published, Task, Verdict, register, run_task, unregister)
from tinygrad_gpt.lab import m01_norm_placement as m01
from tinygrad_gpt.lab import m02_residual as m02
from tinygrad_gpt.lab import m03_ffn_width as m03
from tinygrad_gpt.lab import m06_final_norm as m06
from tinygrad_gpt.lab.common import lab_data
from tinygrad_gpt.lab.deep import smooth, unigram_loss

# a few seconds each: the deep experiments at a fraction of their size
REDUCED = {"norm": dict(n_layer=3, steps=8, warmup=3, lrs=[3e-3, 3e-2]),
           "residual": dict(n_layer=4, steps=8),
           "ffn": dict(steps=8, ratios=[1, 4]),
           "final-norm": dict(n_layer=2, steps=8, probe_every=3)}


def reduced(slug: str, seed: int = 0) -> dict:
    settings = {**MISTAKES[slug].settings("deep"), **REDUCED[slug]}
    result = run_task(Task(slug, "deep", seed, settings=settings))
    assert not result["error"], result["notes"]
    return result


@pytest.mark.parametrize("slug", sorted(REDUCED))
def test_each_deep_experiment_runs_reduced_and_says_its_kind(slug):
    r = reduced(slug)
    deep = MISTAKES[slug].deep
    assert r["tier"] == "deep" and r["symptom"] == deep.symptom
    assert r["kind"] in EVIDENCE and r["reproduced"] == (r["kind"] != NOT_SEEN)
    assert r["symptom_words"] and deep.symptom not in r["symptom_words"]
    assert r["published"]["paper"] == deep.published.paper and r["published"]["claim"]
    # the verdict recomputed from the returned metrics gives the same answer
    v = deep.verdict(r["metrics"], {**r["settings"], **r["facts"]})
    assert (v.kind, v.symptom, v.sentence) == (r["kind"], r["symptom_words"], r["verdict"])
    json.dumps(r)                                   # plain data


def test_unigram_loss_is_the_cross_entropy_of_character_frequencies():
    data = lab_data()
    counts = np.bincount(data.train, minlength=data.vocab_size) + 1.0
    p = counts / counts.sum()
    assert unigram_loss(data) == pytest.approx(float(-np.log(p[data.val]).mean()))
    # below the uniform guess, above zero
    assert 0 < unigram_loss(data) < math.log(data.vocab_size)


def test_smooth_is_a_trailing_mean():
    assert smooth([1.0, 3.0, 5.0, 7.0], k=2) == [1.0, 2.0, 4.0, 6.0]


def _norm_metrics(post, pre, warm, diverged=(False, False)):
    def side(v, d=(False, False)):
        lag = [a - b for a, b in zip(v, pre)]
        return {"val_loss_by_lr": v, "diverged_by_lr": list(d), "lag_vs_pre_by_lr": lag}
    return {"wrong": side(post, diverged), "fixed": side(pre), "warmup": side(warm)}


def test_norm_harm_needs_post_norm_behind_and_warmup_rescuing_it():
    ctx = {"lrs": [1e-2, 3e-2], "steps": 10, "n_layer": 12, "n_embd": 16}
    # behind by 0.5 at lr 3e-2, warmup within 0.05: harm
    v = m01.deep_verdict(_norm_metrics([2.0, 3.0], [2.0, 2.5], [2.0, 2.55]), ctx)
    assert v.kind == HARM and "+0.50 nats behind pre-norm at lr 0.03" in v.symptom
    # behind, but warmup does not rescue it: not the published harm
    assert m01.deep_verdict(_norm_metrics([2.0, 3.0], [2.0, 2.5], [2.0, 2.9]), ctx).kind \
        == NOT_SEEN
    # level with pre-norm everywhere: not seen
    assert m01.deep_verdict(_norm_metrics([2.0, 2.55], [2.0, 2.5], [2.0, 2.5]), ctx).kind \
        == NOT_SEEN
    # diverged (inf) at lr 3e-2, warmup fine: harm
    v = m01.deep_verdict(_norm_metrics([2.0, math.inf], [2.0, 2.5], [2.0, 2.5],
                                       (False, True)), ctx)
    assert v.kind == HARM


def test_residual_harm_is_a_stall_at_the_unigram_loss():
    ctx = {"n_layer": 16, "steps": 10, "lr": 3e-3, "unigram_loss": 3.2}

    def m(w, f, orders=10.0):
        return {"wrong": {"val_loss": 3.2 + w, "val_minus_unigram": w,
                          "grad_orders_of_magnitude": orders},
                "fixed": {"val_loss": 3.2 + f, "val_minus_unigram": f,
                          "grad_orders_of_magnitude": 0.1}}
    assert m02.deep_verdict(m(0.02, -0.75), ctx).kind == HARM
    assert m02.deep_verdict(m(-0.4, -0.75), ctx).kind == MECHANISM      # learns, gradient fades
    assert m02.deep_verdict(m(-0.4, -0.75, 0.5), ctx).kind == NOT_SEEN
    assert m02.deep_verdict(m(0.02, -0.1), ctx).kind == MECHANISM       # neither learns


def test_ffn_harm_is_a_gap_at_equal_steps_beyond_the_margin():
    ctx = {"steps": 10, "n_embd": 16, "target_non_embedding": 6592}

    def m(gap, equal_params_gap=0.0):
        side = {"n_embd_equal_params": 16, "val_loss_equal_params": 2.5}
        return {"wrong": {**side, "d_ff_ratio": 1, "val_loss": 2.5 + gap, "val_loss_gap": gap,
                          "val_loss_equal_params": 2.5 + equal_params_gap},
                "fixed": {**side, "d_ff_ratio": 4, "val_loss": 2.5, "val_loss_gap": 0.0}}
    assert m03.deep_verdict(m(0.08), ctx).kind == HARM
    # a small gap, gone at equal parameters: capacity
    v = m03.deep_verdict(m(0.03, -0.04), ctx)
    assert v.kind == MECHANISM and "+0.030 nats behind 4d" in v.symptom
    assert m03.deep_verdict(m(0.03, 0.03), ctx).kind == NOT_SEEN     # small and not capacity
    assert m03.deep_verdict(m(0.005), ctx).kind == NOT_SEEN          # noise


def test_final_norm_harm_needs_the_drift_and_a_worse_loss():
    ctx = {"steps": 10, "lr": 3e-3}

    def m(growth, gap):
        base = {"head_input_rms_init": 1.0, "head_input_rms_trained": growth,
                "head_input_growth": growth, "diverged": False}
        return {"wrong": {**base, "val_loss": 2.0 + gap, "val_loss_gap": gap},
                "fixed": {**base, "head_input_growth": 1.2, "val_loss": 2.0,
                          "val_loss_gap": 0.0}}
    assert m06.deep_verdict(m(90, 0.3), ctx).kind == HARM
    assert m06.deep_verdict(m(90, -0.1), ctx).kind == MECHANISM
    assert m06.deep_verdict(m(2, 0.3), ctx).kind == NOT_SEEN


def _tiny_deep():
    def measure(settings, seed, data):
        return Measured({"wrong": {"v": 2.0}, "fixed": {"v": 1.0}})
    return Mistake(96, "test-deep", "has a deep tier", "x", {}, {}, {"quick": {}, "full": {}},
                   measure, lambda m, c: Verdict(MECHANISM, "quick", "quick"), "v",
                   deep=Deep({"k": 1}, measure,
                             lambda m, c: Verdict(HARM, f"v {m['wrong']['v']:g} vs "
                                                        f"{m['fixed']['v']:g}", "deep"),
                             "v", published=Published("A paper", "Figure 2", "it hurts")))


def test_lab_deep_runs_deep_experiments_and_skips_the_others(tmp_path, capsys):
    register(_tiny_deep())
    try:
        out = tmp_path / "out"
        assert main(["lab", "--deep", "--only", "test-deep,5", "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "lab: 5 ln-axis has no deep experiment; skipped" in text
        assert "1 harm reproduced in" in text and "v 2 vs 1" in text
        doc = json.loads((out / "results.json").read_text())
        assert doc["tier"] == "deep" and doc["kinds"][HARM] == 1 and doc["total"] == 1
        entry, = doc["mistakes"]
        assert entry["slug"] == "test-deep" and entry["settings"] == {"k": 1}
        assert entry["published"] == {"paper": "A paper", "figure": "Figure 2",
                                      "claim": "it hurts"}
        html = (out / "index.html").read_text()
        assert "the deep tier" in html and "Published: A paper, Figure 2: it hurts" in html
    finally:
        unregister("test-deep")
    with pytest.raises(SystemExit):
        main(["lab", "--deep", "--quick"])
    assert "not allowed with argument" in capsys.readouterr().err
