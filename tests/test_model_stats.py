"""Norms by part of the model: the one definition the lab, the trainer and the scripts share,
checked against sums written out by hand."""
import math

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.model.stats import block_grad_norms, grad_norms_by_part, norms_by_part, part_of


@pytest.mark.parametrize("name, part", [
    ("transformer.h.3.attn.c_attn.weight", "h.3"), ("transformer.h.12.ln_1.bias", "h.12"),
    ("transformer.wte.weight", "wte"), ("transformer.wpe.weight", "wpe"),
    ("transformer.ln_f.weight", "ln_f"), ("lm_head.weight", "lm_head")])
def test_part_of(name, part):
    assert part_of(name) == part


def test_norms_by_part_joins_arrays_and_counts_missing_ones_as_zero():
    named = [("transformer.h.0.a", np.array([3.0, 0.0], np.float32)),
             ("transformer.h.0.b", np.array([[4.0]], np.float32)),
             ("transformer.h.1.a", None), ("lm_head.weight", np.array([1.0, 1.0]))]
    assert norms_by_part(named) == {"h.0": 5.0, "h.1": 0.0, "lm_head": math.sqrt(2.0)}


def test_block_grad_norms_match_a_hand_computation():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=3, n_head=2, n_embd=8,
                          tie_weights=False), seed=0)
    ids = np.random.default_rng(0).integers(0, 11, (2, 8))
    _, loss = model(ids, np.roll(ids, -1, 1))
    loss.backward()
    want = []
    for i in range(3):
        sq = sum(float(np.sum(p.grad.astype(np.float64) ** 2))
                 for n, p in model.named_parameters() if n.startswith(f"transformer.h.{i}."))
        want.append(math.sqrt(sq))
    assert block_grad_norms(model) == pytest.approx(want, rel=1e-6)   # float32 dot products
    parts = grad_norms_by_part(model)
    assert list(parts) == ["wte", "wpe", "h.0", "h.1", "h.2", "ln_f", "lm_head"]
    assert parts["lm_head"] == pytest.approx(float(np.linalg.norm(
        model.lm_head.weight.grad.astype(np.float64))), rel=1e-6)
