"""The fast path's switch and its promises: importing the package changes nothing in the
process, `tune_process` is the one place that does, and generation's no-graph decode fails
closed (every GPTConfig field and value gives the reference forward's tokens and logits)."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig, fast, no_grad
from tinygrad_gpt.fast import decode

_IMPORT_AUDIT = """
import sys
import numpy                      # third-party imports come first: the package is audited
events = []
sys.addaudithook(lambda event, args: event.startswith("ctypes.") and events.append(event))
import tinygrad_gpt
from tinygrad_gpt import fast
print(sorted(set(events)), fast.is_enabled())
"""


def test_importing_the_package_makes_no_ctypes_call_and_leaves_fast_off():
    """No mallopt, no OpenBLAS setting at import: an audit hook sees every ctypes.dlopen,
    ctypes.dlsym and foreign call the import would make."""
    res = subprocess.run([sys.executable, "-c", _IMPORT_AUDIT], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[] False"


def test_the_switch_and_its_context():
    assert not fast.is_enabled()
    with fast.enabled():
        assert fast.is_enabled()
        with fast.enabled(False):
            assert not fast.is_enabled()
        assert fast.is_enabled()
    assert not fast.is_enabled()
    fast.enable()
    try:
        assert fast.is_enabled()
    finally:
        fast.disable()
    assert not fast.is_enabled()


# ----------------------------------------------------------------------------- decode fails closed

BASE = GPTConfig(vocab_size=31, block_size=16, n_layer=2, n_head=2, n_embd=16)

# every GPTConfig field with the values generation is checked under; a field missing here fails
# test_every_config_field_has_values_in_the_table, so a new switch cannot go unchecked
VALUES = {
    "vocab_size": [31, 50],
    "block_size": [16, 6],
    "n_layer": [1, 3],
    "n_head": [2, 4],
    "n_embd": [16, 24],
    "dropout": [0.0, 0.2],
    "bias": [True, False],
    "layer_norm_eps": [1e-5, 1e-2],
    "norm_placement": ["pre", "post", "mixed"],
    "residual": [True, False],
    "ffn_hidden": [None, 16],
    "tie_weights": [True, False],
    "ln_axis": [-1, 0],
    "final_norm": [True, False],
    "pos_encoding": ["learned", "sinusoidal", "rope", "alibi", "none"],
    "mask_padding": [True, False],
    "kv_cache_update": [True, False],
}
CASES = [(name, value) for name, values in VALUES.items() for value in values]


def test_every_config_field_has_values_in_the_table():
    fields = [f.name for f in dataclasses.fields(GPTConfig)]
    missing = [name for name in fields if name not in VALUES]
    assert not missing, f"GPTConfig fields without values to test generation under: {missing}"
    assert not set(VALUES) - set(fields), "values for fields GPTConfig no longer has"


@pytest.mark.parametrize("name, value", CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_generation_with_fast_on_gives_the_reference_tokens_and_logits(name, value):
    model = GPT(BASE.replace(**{name: value}), seed=1)
    model.eval()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    n = model.config.block_size + 2                   # learned positions: the window slides
    for use_cache in (True, False):
        with fast.enabled():
            quick = model.generate(prompt, n, top_k=1, use_cache=use_cache)
        reference = model.generate(prompt, n, top_k=1, use_cache=use_cache)
        np.testing.assert_array_equal(quick, reference)
    ids = quick[:, :model.config.block_size]
    t = ids.shape[1]
    allowed = np.tril(np.ones((t, t), dtype=bool))[None, None]
    with fast.enabled(), no_grad(), model._generation_forward() as forward:
        got = forward(ids, np.arange(t), allowed).data
    with no_grad():
        want = model.forward_positions(ids, np.arange(t), allowed).data
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    expected_numpy = decode.REPRODUCED.get(name, ()) is decode.ANY or \
        value in decode.REPRODUCED[name]
    with fast.enabled():
        assert model._numpy_decode_reproduces() is expected_numpy


def test_a_field_missing_from_the_allow_list_falls_back_to_the_reference(monkeypatch):
    model = GPT(BASE)
    assert decode.reproduces(model.config)
    monkeypatch.delitem(decode.REPRODUCED, "residual")        # as if `residual` were new
    assert not decode.reproduces(model.config) and not model._numpy_decode_reproduces()


def test_overridden_hooks_replaced_layers_and_recorded_maps_fall_back(rng):
    class Shifted(GPT):
        def position_vectors(self, positions):
            return super().position_vectors(positions[::-1].copy())

    class Longer(GPT):
        def check_length(self, t):
            pass

    with fast.enabled():
        assert GPT(BASE)._numpy_decode_reproduces()
        assert not Shifted(BASE)._numpy_decode_reproduces()
        assert not Longer(BASE)._numpy_decode_reproduces()
        recording = GPT(BASE)
        recording.record_attention()
        assert not recording._numpy_decode_reproduces()
        replaced = GPT(BASE)

        class MyMLP(type(replaced.transformer.h[0].mlp)):
            pass
        replaced.transformer.h[0].mlp.__class__ = MyMLP
        assert not replaced._numpy_decode_reproduces()
        shifted = Shifted(BASE, seed=2)
        prompt = np.array([[1, 2, 3]])
        quick = shifted.generate(prompt, 6, top_k=1)
    np.testing.assert_array_equal(quick, shifted.generate(prompt, 6, top_k=1))
