"""The deep tiers of mistakes 4, 7, 9 and 10 at a reduced size, through run_task: tied against
untied at equal parameters, the extrapolation curve (loss at 1x .. 4x the training length for
learned, sinusoidal, RoPE and ALiBi), REINFORCE on a reward that needs the context, and word
unknowns with bits per byte by vocabulary; each verdict decides its kind of evidence from the
metrics, on both sides of its margins."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig

from tinygrad_gpt.lab import HARM, MECHANISM, NOT_SEEN, MISTAKES, Task, run_task
from tinygrad_gpt.lab import m04_tying, m09_argmax, m10_vocabulary
from tinygrad_gpt.lab.m07_positions import DEEP_SETTINGS, RISE_MARGIN, deep_verdict

SMALL = {**DEEP_SETTINGS, "block_size": 8, "n_embd": 16, "steps": 15, "batch_size": 4,
         "eval_batches": 1}


def test_deep_run_scores_every_encoding_at_every_length_and_learned_refuses(tmp_path):
    r = run_task(Task("positions", "deep", seed=0, settings=SMALL))
    assert not r["error"], r["notes"]
    m = r["metrics"]
    assert list(m) == ["wrong", "checked", "sinusoidal", "rope", "fixed"]
    assert r["series"]["lengths"] == [8, 12, 16, 32]
    for side in ("wrong", "sinusoidal", "rope", "fixed"):
        assert len(m[side]["losses"]) == 4 and m[side]["runs_at_4x"], side
        assert all(math.isfinite(v) and 0 < v < 10 for v in m[side]["losses"])
        assert m[side]["rise_at_4x"] == pytest.approx(m[side]["losses"][-1]
                                                      - m[side]["losses"][0])
    # ours refuses at 1.5x with an error naming the limit; inside, the same model as clamped
    assert m["checked"]["refuses_at"] == 12 and m["checked"]["clear_error"]
    assert "sequence length 12 exceeds block_size 8" in m["checked"]["error"]
    assert m["checked"]["losses"] == m["wrong"]["losses"][:1]
    assert m["fixed"]["pos_encoding"] == "alibi"
    assert r["published"]["figure"] == "Figure 1"
    assert r["kind"] in (HARM, MECHANISM, NOT_SEEN)
    assert MISTAKES["positions"].deep.figures[0].draw(r, tmp_path / "x.png").exists()


def metrics(clamped_rise: float, alibi_rise: float, refuses: bool = True) -> dict:
    def side(pe, rise):
        return {"pos_encoding": pe, "losses": [2.0, 2.0, 2.0, 2.0 + rise], "runs_at_4x": True,
                "rise_at_4x": rise}
    checked = {"pos_encoding": "learned", "losses": [2.0], "runs_at_4x": False,
               "refuses_at": 24, "error_type": "ValueError" if refuses else "IndexError",
               "error": "...", "clear_error": refuses}
    return {"wrong": side("learned, clamped", clamped_rise), "checked": checked,
            "sinusoidal": side("sinusoidal", 0.2), "rope": side("rope", 0.3),
            "fixed": side("alibi", alibi_rise)}


@pytest.mark.parametrize("clamped, alibi, refuses, kind", [
    (RISE_MARGIN + 0.05, -0.03, True, HARM),
    (RISE_MARGIN - 0.05, -0.03, True, MECHANISM),      # the clamp does not hurt: refusal only
    (RISE_MARGIN + 0.05, RISE_MARGIN + 0.05, True, MECHANISM),   # ALiBi not flat either
    (RISE_MARGIN + 0.05, -0.03, False, NOT_SEEN),      # no clear refusal: nothing shown
])
def test_deep_verdict_kind_follows_the_margins(clamped, alibi, refuses, kind):
    v = deep_verdict(metrics(clamped, alibi, refuses), DEEP_SETTINGS)
    assert v.kind == kind
    assert f"{clamped:+.2f}" in v.symptom and f"{alibi:+.2f}" in v.symptom


# ---------------------------------------------------------------------------- 4: tying
def test_tying_deep_compares_at_equal_parameters(tmp_path):
    small = {**m04_tying.DEEP_SETTINGS, "bpe_size": 300, "train_chars": 5000, "n_embd": 16,
             "n_head": 2, "block_size": 8, "steps": 20, "eval_every": 10, "eval_batches": 1}
    r = run_task(Task("tying", "deep", seed=0, settings=small))
    assert not r["error"], r["notes"]
    w, f = r["metrics"]["wrong"], r["metrics"]["fixed"]
    assert not w["tie_weights"] and f["tie_weights"] and w["n_embd"] < f["n_embd"] == 16
    assert r["facts"]["vocab_size"] == 300
    # the closest untied width: one step of n_head either way is further from the tied count
    d, n, tied = m04_tying.matched_width(small, 300)
    assert (d, n, tied) == (w["n_embd"], w["params"], f["params"])
    for other in (d - 2, d + 2):
        cfg = GPTConfig(vocab_size=300, block_size=8, n_layer=2, n_head=2, n_embd=other,
                        tie_weights=False)
        assert abs(GPT(cfg).num_parameters() - tied) > abs(n - tied)
    assert len(r["series"]["val_loss"]["tied"]) == 2
    assert w["gap_best"] == pytest.approx(w["val_loss_best"] - f["val_loss_best"])
    assert MISTAKES["tying"].deep.figures[0].draw(r, tmp_path / "t.png").exists()
    assert w["gap_late"] == pytest.approx(w["val_loss_late"] - f["val_loss_late"])
    ctx = {**small, **r["facts"]}
    margin = m04_tying.LOSS_MARGIN
    for late, best, kind in ((margin + 0.01, 0.0, HARM), (margin - 0.01, 0.0, NOT_SEEN),
                             (margin + 0.01, -margin - 0.01, NOT_SEEN)):
        m = {"wrong": {**w, "gap_late": late, "gap_best": best}, "fixed": f}
        assert m04_tying.deep_verdict(m, ctx).kind == kind


# ---------------------------------------------------------------------------- 9: argmax
def test_previous_char_reward_and_its_exact_expectation():
    x = np.array([[3, 1, 4, 1]])
    s = np.array([[0, 3, 1, 4]])
    np.testing.assert_array_equal(m09_argmax.previous_char_reward(s, x, x), [[0, 1, 1, 1]])
    np.testing.assert_array_equal(m09_argmax.previous_char_reward(x, x, x), [[0, 0, 0, 0]])


def test_argmax_deep_measures_reinforce_beyond_constant_and_placebo():
    small = {**m09_argmax.DEEP_SETTINGS, "block_size": 8, "n_embd": 16, "reinforce_steps": 10,
             "batch_size": 4, "eval_windows": 4}
    r = run_task(Task("argmax", "deep", seed=0, settings=small))
    assert not r["error"], r["notes"]
    w, f, p = (r["metrics"][k] for k in ("wrong", "fixed", "placebo"))
    assert w["nonzero_grad_params"] == 0 and w["grad_max_abs"] == 0.0
    const = r["facts"]["constant_policy_reward"]
    assert 0 < const < 1
    assert f["beyond_constant"] == pytest.approx(f["expected_reward_after"] - const)
    assert f["beyond_placebo"] == pytest.approx(f["expected_reward_after"]
                                                - p["expected_reward_after"])
    assert len(r["series"]["reinforce_reward"]) == 10
    base = {"nonzero_grad_params": 0, "grad_max_abs": 0.0, "parameters": 28,
            "expected_reward_after": 0.01}
    good = {"expected_reward_after": 0.6, "reward_gain": 0.59, "reward_gain_stderr": 0.02,
            "beyond_constant": 0.33, "beyond_placebo": 0.58}
    ctx = {"constant_policy_reward": 0.27, "eval_windows": 64}
    placebo = {"expected_reward_after": 0.02}
    verdict = m09_argmax.deep_verdict
    assert verdict({"wrong": base, "fixed": good, "placebo": placebo}, ctx).kind == HARM
    level = {**good, "beyond_constant": 0.02}          # ends level with the constant answer
    assert verdict({"wrong": base, "fixed": level, "placebo": placebo}, ctx).kind == MECHANISM
    leaks = {**base, "nonzero_grad_params": 3, "grad_max_abs": 0.1}
    assert verdict({"wrong": leaks, "fixed": level, "placebo": placebo}, ctx).kind == NOT_SEEN


# ---------------------------------------------------------------------------- 10: vocabulary
def test_word_vocabulary_unknowns_are_counted_on_the_rest():
    text = "the cat sat . " * 20 + "the dog ran far . "
    out = m10_vocabulary.word_unknowns(text, 4, 140 / len(text))     # cut after 10 repeats
    # vocabulary from the sample: the cat sat . ; the rest adds dog ran far
    assert out["vocab_size"] == 4 and out["unknown_words"] == 3
    assert out["distinct_unknown_words"] == 3
    assert out["unknown_rate"] == pytest.approx(3 / out["words_in_rest"])
    assert sorted(out["unknown_examples"].split()) == ["dog", "far", "ran"]


def test_vocabulary_deep_runs_bits_per_byte_by_size():
    small = {**m10_vocabulary.DEEP_SETTINGS, "block_size": 8, "n_embd": 16, "steps": 5,
             "eval_batches": 1, "bpe_sizes": [256, 300], "fixed_size": 300}
    r = run_task(Task("vocabulary", "deep", seed=0, settings=small))
    assert not r["error"], r["notes"]
    m = r["metrics"]
    assert list(m) == ["wrong", "chars", "bpe_256", "fixed"]
    assert m["wrong"]["vocab_size"] == 1000 and m["wrong"]["unknown_rate"] > 0.05
    assert m["bpe_256"]["vocab_size"] == 256 and m["fixed"]["vocab_size"] == 300
    assert m["fixed"]["unknown_rate"] == 0 == m["chars"]["unknown_rate"]
    assert r["series"]["vocab_size"] == [m["chars"]["vocab_size"], 256, 300]
    assert all(0 < b < 10 for b in r["series"]["bits_per_byte"])
    assert r["kind"] == HARM
