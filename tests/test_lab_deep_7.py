"""Mistake 7's deep tier at a reduced size: the extrapolation curve (loss at 1x .. 4x the
training length for learned, sinusoidal, RoPE and ALiBi) runs through run_task, and its verdict
decides the kind of evidence from the metrics, on both sides of each margin."""
from __future__ import annotations

import math

import pytest

from tinygrad_gpt.lab import HARM, MECHANISM, NOT_SEEN, MISTAKES, Task, run_task
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
