"""Mistakes 1-6 of the lab, in quick mode: the symptom is measured on the wrong side and absent
on the fixed side (thresholds with margin), the verdict agrees with the metrics, and each
mistake's `build` gives the model of its side."""
import math

import numpy as np
import pytest

from tinygrad_gpt import GPT
from tinygrad_gpt.lab import HARM, MECHANISM, MISTAKES, run_mistake

_CACHE: dict = {}


def quick(slug: str):
    """Each experiment runs once per test session (seed 0, no pictures)."""
    if slug not in _CACHE:
        _CACHE[slug] = run_mistake(slug, quick=True, seed=0)
        assert not _CACHE[slug].error, _CACHE[slug].notes
    return _CACHE[slug]


def test_registry_numbers_slugs_and_order():
    for number, slug in enumerate(["norm", "residual", "ffn", "tying", "ln-axis",
                                   "final-norm"], 1):
        m = MISTAKES[number]
        assert MISTAKES[slug] is m and m.slug == slug and m.number == number
        assert len(m.explanation) > 300 and m.title
        assert m.wrong != m.fixed


@pytest.mark.parametrize("slug", ["norm", "residual", "ffn", "tying", "ln-axis", "final-norm"])
def test_build_gives_each_side(slug):
    m = MISTAKES[slug]
    ids = np.arange(16).reshape(2, 8) % 60
    configs = {}
    for side in ("wrong", "fixed"):
        model = m.build(side, 0)
        assert isinstance(model, GPT)
        logits, loss = model(ids, ids)
        assert logits.shape == (2, 8, model.config.vocab_size) and math.isfinite(loss.item())
        configs[side] = model.config.to_dict()
    changed = {k for k in configs["wrong"] if configs["wrong"][k] != configs["fixed"][k]}
    assert changed and changed <= {"norm_placement", "residual", "ffn_hidden", "tie_weights",
                                   "ln_axis", "final_norm"}
    with pytest.raises(ValueError, match="side"):
        m.build("neither", 0)


def test_norm_placement_gradients_out_of_balance_only_with_post_and_mixed():
    r = quick("norm")
    w, f, mixed = r.metrics["wrong"], r.metrics["fixed"], r.metrics["mixed"]
    assert w["placement"] == "post" and f["placement"] == "pre"
    assert w["grad_span_init"] > 10 and mixed["grad_span_init"] > 10     # measured ~22x, ~32x
    assert f["grad_span_init"] < 1.6                                      # measured ~1.1x
    # post-norm: the first block, under a LayerNorm of the tiny embedding, gets the most
    assert w["grad_first_over_last"] > 10
    assert all(len(s["grad_by_layer_init"]) == 6 for s in (w, f, mixed))
    assert r.reproduced and r.symptom == "grad_span_init"
    # imbalance at init, but post-norm trains as well as pre-norm here: the mechanism only
    assert abs(w["val_loss"] - f["val_loss"]) < 0.1
    assert r.kind == MECHANISM and "gradient spread across blocks at init, 22x" in \
        r.symptom_words


def test_missing_residuals_gradient_fades_over_orders_of_magnitude():
    r = quick("residual")
    w, f = r.metrics["wrong"], r.metrics["fixed"]
    g = w["grad_by_layer_init"]
    assert len(g) >= 8
    assert w["grad_orders_of_magnitude"] > 3          # measured ~4.8 on seeds 0-2
    assert g[0] < g[-1] * 1e-3                         # fading towards the input
    assert f["grad_orders_of_magnitude"] < 0.3         # flat with the skip path
    assert w["val_loss"] > f["val_loss"] + 0.1         # and the loss lags behind
    assert r.kind == HARM and "without residuals" in r.symptom_words


def test_ffn_width_costs_loss_and_saves_parameters():
    r = quick("ffn")
    w, f = r.metrics["wrong"], r.metrics["fixed"]
    assert w["d_ff"] * 4 == f["d_ff"]
    # two MLP matrices of d x d_ff (+ biases) per block: the saving is exact
    d, layers = w["d_ff"], 2
    assert f["mlp_params"] - w["mlp_params"] == layers * (2 * d * 3 * d + 3 * d)
    assert f["params"] - w["params"] == f["mlp_params"] - w["mlp_params"]
    assert 0.01 < w["val_loss"] - f["val_loss"] < 0.1    # measured +0.027: not yet harm
    assert r.kind == MECHANISM and r.symptom_words.startswith("42% fewer parameters")


def test_tying_saves_vocab_times_d_and_gradient_arrives_from_both_ends():
    r = quick("tying")
    w, f = r.metrics["wrong"], r.metrics["fixed"]
    vocab = len(r.series["row_grad_output_end"])
    assert w["extra_params"] == vocab * 32                 # vocab x n_embd, exactly
    assert f["grad_input_end"] > 0 and f["grad_output_end"] > 0
    assert f["tied_minus_sum"] < 1e-6                      # tied grad = input end + output end
    assert f["wte_rows_with_grad"] == 1.0                  # the head reaches every row
    assert w["wte_rows_with_grad"] < 0.9                   # the lookup only the batch's tokens
    assert abs(w["val_loss"] - f["val_loss"]) < 0.2        # similar loss for 11% fewer
    assert w["val_loss"] < f["val_loss"]                   # untied even a little lower here
    assert r.kind == MECHANISM and "parameters spent twice" in r.symptom_words


def test_ln_axis_makes_samples_depend_on_each_other():
    r = quick("ln-axis")
    w, f = r.metrics["wrong"], r.metrics["fixed"]
    assert w["batch_dependence"] > 1e-2
    assert f["batch_dependence"] == 0.0                   # bit-identical
    # batch of one: every LayerNorm outputs its bias, so the input is ignored; the outputs
    # agree to float32 rounding only (measured 1.2e-7: BLAS may compute some rows with a
    # different kernel), against 0.1 and more when the input is seen
    assert w["b1_output_spread"] < 1e-5
    assert f["b1_output_spread"] > 0.1
    assert w["batch1_minus_batched"] > 0.3
    assert abs(f["batch1_minus_batched"]) < 1e-4
    assert r.kind == HARM and "a batch of one scores" in r.symptom_words


def test_final_norm_head_reads_the_raw_stream():
    r = quick("final-norm")
    w, f = r.metrics["wrong"], r.metrics["fixed"]
    assert abs(w["loss_init_minus_ln_vocab"]) < 0.01      # logits ~0: exactly uniform
    assert w["logit_std_init"] < 0.1 * f["logit_std_init"]
    assert w["head_input_growth"] > 10
    assert 0.3 < f["head_input_growth"] < 3
    assert 0.5 < f["head_input_rms_init"] < 2             # LayerNorm output: unit scale
    assert w["head_input_rms_init"] == pytest.approx(w["stream_rms_by_depth_init"][-1])
    # quick tier, seed 0: the loss is 0.44 nats worse without ln_f (mixed at other sizes)
    assert w["val_loss"] > f["val_loss"] + 0.1
    assert r.kind == HARM and "head input drifts" in r.symptom_words


def test_same_seed_same_numbers():
    a = run_mistake("ln-axis", quick=True, seed=1)
    b = run_mistake("ln-axis", quick=True, seed=1)
    assert a.metrics == b.metrics and a.verdict == b.verdict
