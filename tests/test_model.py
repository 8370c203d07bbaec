"""The GPT's invariants (causality, padding, batch independence, cache equivalence, loss at
init, overfitting), its input errors, generation, and what each mistake switch does."""
import math
import re

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig, Tensor, optim
from tinygrad_gpt.model import Block, init_loss
from tinygrad_gpt.model.positions import apply_rope, rope_cos_sin, sinusoidal_table
from tinygrad_gpt.model.sampling import sample

V, T = 23, 12
POS = ["learned", "sinusoidal", "rope", "alibi", "none"]


def cfg(**kw) -> GPTConfig:
    base = dict(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=16)
    base.update(kw)
    return GPTConfig(**base)


def decisive(model: GPT, seed: int = 0, std: float = 0.3) -> GPT:
    """Large random weights, so logits are far apart (greedy choices are not near-ties) and
    every component visibly matters, as in a trained model."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        centre = 1.0 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or \
            name.endswith("ln_f.weight") else 0.0
        p.data[...] = rng.normal(centre, std, p.shape)
    return model


def ids(b: int, t: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, (b, t))


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize("kw, message", [
    (dict(n_head=3), "GPTConfig: n_embd 16 is not divisible by n_head 3"),
    (dict(n_layer=0), "GPTConfig: n_layer must be a positive integer, got 0"),
    (dict(vocab_size=2.5), "GPTConfig: vocab_size must be a positive integer, got 2.5"),
    (dict(dropout=1.0), "GPTConfig: dropout must be in [0, 1), got 1.0"),
    (dict(norm_placement="sandwich"), "GPTConfig: norm_placement must be one of ('pre', "
                                      "'post', 'mixed'), got 'sandwich'"),
    (dict(pos_encoding="xpos"), "GPTConfig: pos_encoding must be one of ('learned', "
                                "'sinusoidal', 'rope', 'alibi', 'none'), got 'xpos'"),
    (dict(ln_axis=1), "GPTConfig: ln_axis must be -1 (features) or 0 (batch), got 1"),
    (dict(ffn_hidden=0), "GPTConfig: ffn_hidden must be a positive integer or None, got 0"),
    (dict(n_embd=12, n_head=4, pos_encoding="rope"), "GPTConfig: rope needs an even head "
                                                     "size, got 3"),
    (dict(residual="False"), "GPTConfig: residual must be True or False, got 'False'"),
    (dict(tie_weights=0), "GPTConfig: tie_weights must be True or False, got 0"),
    (dict(ffn_hidden=True), "GPTConfig: ffn_hidden must be a positive integer or None, got "
                            "True"),
    (dict(layer_norm_eps=0.0), "GPTConfig: layer_norm_eps must be a finite number > 0, got 0.0"),
    (dict(layer_norm_eps=float("inf")), "GPTConfig: layer_norm_eps must be a finite number > 0, "
                                        "got inf"),
    (dict(layer_norm_eps=True), "GPTConfig: layer_norm_eps must be a finite number > 0, got "
                                "True"),
    (dict(dropout="0.1"), "GPTConfig: dropout must be in [0, 1), got 0.1"),
    (dict(ln_axis=False), "GPTConfig: ln_axis must be -1 (features) or 0 (batch), got False"),
])
def test_config_validation_messages(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cfg(**kw)


def test_config_stores_numpy_bools_as_plain_bools():
    c = cfg(residual=np.bool_(False), mask_padding=np.True_)
    assert c.residual is False and c.mask_padding is True
    with pytest.raises(ValueError, match="mask_padding must be True or False"):
        cfg(mask_padding=np.array([True]))


def test_config_dict_round_trip_and_unknown_fields():
    c = cfg(norm_placement="mixed", ffn_hidden=20, pos_encoding="rope")
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match=re.escape("GPTConfig: unknown fields ['n_heads']")):
        GPTConfig.from_dict({**c.to_dict(), "n_heads": 2})
    assert c.replace(n_layer=3).n_layer == 3 and c.d_ff == 20 and cfg().d_ff == 64


# ---------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("pos", POS)
def test_causality_changing_a_later_token_never_changes_earlier_logits(pos):
    model = decisive(GPT(cfg(pos_encoding=pos)))
    x = ids(2, T)
    base = model(x)[0].data
    for t in (0, 5, T - 2):
        y = x.copy()
        y[:, t + 1:] = (y[:, t + 1:] + 1 + np.arange(T - t - 1)) % V
        out = model(y)[0].data
        np.testing.assert_array_equal(out[:, :t + 1], base[:, :t + 1])
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:])


def test_loss_at_init_is_near_ln_vocab():
    model = GPT(cfg(vocab_size=65, n_embd=32, block_size=16))
    x = np.random.default_rng(0).integers(0, 65, (8, 16))
    _, loss = model(x, np.roll(x, -1, axis=1))
    assert init_loss(65) == pytest.approx(math.log(65))
    assert abs(loss.item() - math.log(65)) < 0.05


def test_a_tiny_batch_overfits():
    model = GPT(cfg())
    x = ids(2, 8, seed=1)
    y = ids(2, 8, seed=2)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    first = None
    for _ in range(60):
        _, loss = model(x, y)
        first = first if first is not None else loss.item()
        model.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.0 and model(x, y)[1].item() < 0.05


@pytest.mark.parametrize("pos", POS)
def test_right_padded_batch_equals_each_sequence_alone(pos):
    model = decisive(GPT(cfg(pos_encoding=pos)))
    a, b = ids(1, 9, seed=3), ids(1, 5, seed=4)
    batch = np.zeros((2, 9), dtype=np.int64)
    mask = np.zeros((2, 9), dtype=np.int64)
    batch[0], mask[0] = a[0], 1
    batch[1, :5], mask[1, :5] = b[0], 1
    out = model(batch, attention_mask=mask)[0].data
    np.testing.assert_allclose(out[0], model(a)[0].data[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[1, :5], model(b)[0].data[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pos", POS)
def test_left_padded_batch_equals_each_sequence_alone(pos):
    model = decisive(GPT(cfg(pos_encoding=pos)))
    a, b = ids(1, 9, seed=5), ids(1, 4, seed=6)
    batch = np.full((2, 9), 7, dtype=np.int64)
    mask = np.zeros((2, 9), dtype=bool)
    batch[0], mask[0] = a[0], True
    batch[1, 5:], mask[1, 5:] = b[0], True
    out = model(batch, attention_mask=mask)[0].data
    np.testing.assert_allclose(out[0], model(a)[0].data[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[1, 5:], model(b)[0].data[0], rtol=1e-5, atol=1e-5)


def test_padded_targets_are_ignored_by_the_loss():
    model = decisive(GPT(cfg()))
    x, y = ids(1, 6, seed=7), ids(1, 6, seed=8)
    _, alone = model(x[:, :4], y[:, :4])
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    _, padded = model(x, y, attention_mask=mask)
    assert padded.item() == pytest.approx(alone.item(), rel=1e-6)


def test_a_fully_padded_row_stays_finite_in_forward_and_backward():
    model = decisive(GPT(cfg()))
    x, y = ids(2, 6, seed=9), ids(2, 6, seed=10)
    mask = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    logits, loss = model(x, y, attention_mask=mask)
    assert np.isfinite(logits.data).all() and math.isfinite(loss.item())
    loss.backward()
    assert all(np.isfinite(p.grad).all() for p in model.parameters())
    _, alone = model(x[:1, :3], y[:1, :3])
    assert loss.item() == pytest.approx(alone.item(), rel=1e-6)


def test_batch_rows_are_independent():
    model = decisive(GPT(cfg()))
    x = ids(3, T, seed=11)
    out = model(x)[0].data
    y = x.copy()
    y[2] = (y[2] + 1) % V
    np.testing.assert_array_equal(model(y)[0].data[:2], out[:2])


def test_dropout_is_random_in_training_and_off_in_eval():
    model = GPT(cfg(dropout=0.2))
    x = ids(2, T, seed=12)
    a, b = model(x)[0].data, model(x)[0].data
    assert not np.array_equal(a, b)
    model.eval()
    np.testing.assert_array_equal(model(x)[0].data, model(x)[0].data)


def test_attention_maps_are_causal_distributions():
    model = decisive(GPT(cfg()))
    model.record_attention()
    model(ids(2, 7, seed=13))
    maps = model.attention_maps()
    assert len(maps) == 2 and maps[0].shape == (2, 2, 7, 7)
    for att in maps:
        np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)
        assert np.all(np.triu(att[0, 0], 1) == 0)


def test_state_dict_round_trip_between_models():
    a, b = decisive(GPT(cfg(tie_weights=False))), GPT(cfg(tie_weights=False), seed=1)
    b.load_state_dict(a.state_dict())
    x = ids(2, T, seed=14)
    np.testing.assert_array_equal(a(x)[0].data, b(x)[0].data)
    wide = GPT(cfg(n_embd=32))
    with pytest.raises(ValueError, match=re.escape(
            "load_state_dict: 'transformer.wte.weight' has shape (23, 16) in the state dict "
            "but (23, 32) in the model")):
        wide.load_state_dict(GPT(cfg()).state_dict())


# ---------------------------------------------------------------------------- input errors
def test_input_errors_name_the_limit():
    model = GPT(cfg())
    with pytest.raises(ValueError, match=re.escape(
            "GPT: token id 23 at position (1, 2) is out of range for vocab_size 23 "
            "(allowed 0..22)")):
        model(np.array([[0, 1, 2], [3, 4, 23]]))
    with pytest.raises(ValueError, match=re.escape(
            "GPT: token id -1 at position (0, 0) is out of range for vocab_size 23")):
        model(np.array([[-1, 1]]))
    with pytest.raises(TypeError, match=re.escape(
            "GPT: idx must hold integer token ids, got dtype float64")):
        model(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=re.escape(
            "GPT: sequence length 13 exceeds block_size 12 for learned positions (allowed "
            "1..12); crop the input, or use pos_encoding='sinusoidal', 'rope' or 'alibi' to go "
            "longer")):
        model(ids(1, 13))
    with pytest.raises(ValueError, match=re.escape(
            "GPT: attention_mask has shape (1, 3), expected (2, 3) (the shape of idx)")):
        model(ids(2, 3), attention_mask=np.ones((1, 3)))
    with pytest.raises(ValueError, match=re.escape(
            "GPT: attention_mask must hold only 0 (padding) and 1 (token)")):
        model(ids(1, 3), attention_mask=np.array([[1, 2, 1]]))
    with pytest.raises(ValueError, match=re.escape(
            "GPT: idx must have shape (B, T) with T >= 1, got (3,)")):
        model(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=re.escape(
            "GPT: targets have shape (1, 2), expected (1, 3)")):
        model(ids(1, 3), ids(1, 2))


def test_longer_sequences_are_fine_without_learned_positions():
    for pos in ("sinusoidal", "rope", "alibi", "none"):
        logits, _ = GPT(cfg(pos_encoding=pos))(ids(1, 3 * T))
        assert logits.shape == (1, 3 * T, V)


def test_generate_argument_errors():
    model = GPT(cfg())
    x = ids(1, 3)
    with pytest.raises(ValueError, match=re.escape("generate: top_k must be in 1..23, got 0")):
        model.generate(x, 2, top_k=0)
    with pytest.raises(ValueError, match=re.escape("generate: top_p must be in (0, 1], got 0")):
        model.generate(x, 2, top_p=0)
    with pytest.raises(ValueError, match=re.escape(
            "generate: temperature must be a finite number >= 0, got -1")):
        model.generate(x, 2, temperature=-1)
    with pytest.raises(ValueError, match=re.escape(
            "generate: max_new_tokens must be an integer >= 0, got 1.5")):
        model.generate(x, 1.5)


@pytest.mark.parametrize("kw, message", [
    ({"temperature": float("nan")}, "generate: temperature must be a finite number >= 0, got nan"),
    ({"temperature": float("inf")}, "generate: temperature must be a finite number >= 0, got inf"),
    ({"temperature": "1"}, "generate: temperature must be a finite number >= 0, got '1'"),
    ({"top_p": float("nan")}, "generate: top_p must be in (0, 1], got nan"),
    ({"top_k": 2.5}, "generate: top_k must be in 1..23, got 2.5"),
])
def test_generate_refuses_nan_and_infinite_sampling_arguments(kw, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        GPT(cfg()).generate(ids(1, 3), 2, **kw)


@pytest.mark.parametrize("on", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("sampling", [{"top_k": 1}, {"temperature": 0.8, "seed": 0}])
def test_generate_with_nan_logits_raises_instead_of_emitting_token_0(on, sampling):
    from tinygrad_gpt import fast
    model = GPT(cfg())
    model.transformer.wte.weight.data[2, 5] = np.nan       # token 2's embedding is broken
    message = ("generate: the model's logits hold NaN (batch row 0, token id 0); its weights "
               "or activations are not finite, so no token can be sampled")
    with fast.enabled(on), pytest.raises(FloatingPointError, match="^" + re.escape(message)):
        model.generate(np.array([[1, 2, 3]]), 4, **sampling)


# ---------------------------------------------------------------------------- generation
def _greedy_by_hand(model: GPT, x: np.ndarray, n: int) -> np.ndarray:
    out = x.copy()
    for _ in range(n):
        window = out[:, -T:] if model.config.pos_encoding == "learned" else out
        nxt = model(window)[0].data[:, -1].argmax(-1)
        out = np.concatenate([out, nxt[:, None]], axis=1)
    return out


@pytest.mark.parametrize("pos", POS)
def test_cached_greedy_generation_equals_recomputing_past_block_size(pos):
    model = decisive(GPT(cfg(pos_encoding=pos)))
    x = ids(2, 5, seed=15)
    n = 2 * T                                       # runs well past block_size
    cached = model.generate(x, n, top_k=1, use_cache=True)
    plain = model.generate(x, n, top_k=1, use_cache=False)
    assert cached.shape == (2, 5 + n)
    np.testing.assert_array_equal(cached, plain)
    np.testing.assert_array_equal(plain, _greedy_by_hand(model, x, n))
    np.testing.assert_array_equal(cached[:, :5], x)


def test_generation_restores_training_mode_and_is_deterministic_per_seed():
    model = decisive(GPT(cfg()), std=0.1)
    x = ids(1, 3, seed=16)
    a = model.generate(x, 15, temperature=1.0, seed=3)
    assert model.training
    np.testing.assert_array_equal(a, model.generate(x, 15, temperature=1.0, seed=3))
    assert not np.array_equal(a, model.generate(x, 15, temperature=1.0, seed=4))
    greedy = model.generate(x, 15, top_k=1)
    np.testing.assert_array_equal(model.generate(x, 15, temperature=0.0), greedy)
    np.testing.assert_array_equal(model.generate(x, 15, top_p=1e-6, seed=5), greedy)


def test_top_k_and_top_p_only_sample_allowed_tokens():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    k2 = {int(sample(logits, 1.0, 2, None, rng)[0]) for _ in range(300)}
    assert k2 == {0, 1}
    p = {int(sample(logits, 1.0, None, 0.7, rng)[0]) for _ in range(300)}
    assert p == {0, 1}                              # 0.5 < 0.7 needs the second token too
    draws = [int(sample(logits, 1.0, None, None, rng)[0]) for _ in range(4000)]
    freq = np.bincount(draws, minlength=4) / 4000
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.03)


# ---------------------------------------------------------------------------- positions
def test_sinusoidal_table_values():
    pe = sinusoidal_table(np.arange(50), 8, np.float64)
    scale = pe[0, 1]                                  # cos(0) times the table's scale, if any
    assert scale > 0
    p, i = 37, 2
    assert pe[p, 2 * i] / scale == pytest.approx(math.sin(p / 10000 ** (2 * i / 8)))
    assert pe[p, 2 * i + 1] / scale == pytest.approx(math.cos(p / 10000 ** (2 * i / 8)))
    np.testing.assert_array_equal(pe[0, 0::2], 0.0)
    np.testing.assert_allclose(pe[0, 1::2], scale)
    np.testing.assert_allclose(pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, scale ** 2)


def test_rope_preserves_norms_and_scores_depend_on_offset_only(rng):
    hs = 8
    q = rng.normal(size=(1, 1, 1, hs)).astype(np.float64)
    k = rng.normal(size=(1, 1, 1, hs)).astype(np.float64)

    def rot(x, pos):
        cos, sin = rope_cos_sin(np.array([pos]), hs, dtype=np.float64)
        return apply_rope(Tensor(x), cos, sin).data

    np.testing.assert_allclose(np.linalg.norm(rot(q, 9)), np.linalg.norm(q))
    s1 = (rot(q, 7) * rot(k, 3)).sum()
    s2 = (rot(q, 104) * rot(k, 100)).sum()
    assert s1 == pytest.approx(s2, rel=1e-9)
    assert s1 != pytest.approx((rot(q, 8) * rot(k, 3)).sum(), rel=1e-3)


# ---------------------------------------------------------------------------- mistakes
def test_mistake_1_post_norm_normalises_each_block_output_and_mixed_alternates(rng):
    x = Tensor(rng.normal(2.0, 3.0, (2, 5, 16)).astype(np.float32))
    post = Block(cfg(norm_placement="post"), np.random.default_rng(0))
    pre = Block(cfg(norm_placement="pre"), np.random.default_rng(0))
    y = post(x, np.tril(np.ones((5, 5), bool))[None, None]).data
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)
    z = pre(x, np.tril(np.ones((5, 5), bool))[None, None]).data
    assert abs(z.mean()) > 1.0                         # the residual stream keeps x's offset
    mixed = GPT(cfg(norm_placement="mixed", n_layer=4))
    assert [b.placement for b in mixed.transformer.h] == ["pre", "post", "pre", "post"]
    assert [b.placement for b in GPT(cfg(norm_placement="post")).transformer.h] == ["post"] * 2


def test_mistake_2_no_residual_drops_the_skip_path(rng):
    x = Tensor(rng.normal(size=(1, 4, 16)).astype(np.float32))
    causal = np.tril(np.ones((4, 4), bool))[None, None]
    for residual, expected in ((True, x.data), (False, 0.0)):
        block = Block(cfg(residual=residual), np.random.default_rng(0))
        for lin in (block.attn.c_proj, block.mlp.c_proj):   # branches output exactly zero
            lin.weight.data[...] = 0
            lin.bias.data[...] = 0
        np.testing.assert_allclose(block(x, causal).data, np.broadcast_to(expected, x.shape),
                                   atol=1e-7)


def test_mistake_3_ffn_hidden_sets_the_mlp_width():
    sd = GPT(cfg(ffn_hidden=16)).state_dict()
    assert sd["transformer.h.0.mlp.c_fc.weight"].shape == (16, 16)
    assert sd["transformer.h.0.mlp.c_proj.weight"].shape == (16, 16)
    assert GPT(cfg()).state_dict()["transformer.h.0.mlp.c_fc.weight"].shape == (16, 64)


def test_mistake_4_untied_head_adds_vocab_times_width_parameters():
    tied, untied = GPT(cfg()), GPT(cfg(tie_weights=False))
    assert untied.num_parameters() - tied.num_parameters() == V * 16
    assert tied.lm_head.weight is tied.transformer.wte.weight
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert "lm_head.weight" in dict(untied.named_parameters())
    assert "lm_head.weight" not in dict(tied.named_parameters())    # listed once, as wte


def test_mistake_5_layernorm_over_the_batch_couples_samples():
    x = ids(3, T, seed=17)
    y = x.copy()
    y[2] = (y[2] + 1) % V
    for axis, coupled in ((-1, False), (0, True)):
        model = decisive(GPT(cfg(ln_axis=axis)))
        a, b = model(x)[0].data, model(y)[0].data
        assert (not np.allclose(a[0], b[0])) == coupled


def test_mistake_6_no_final_norm_has_no_ln_f():
    with_ln, without = GPT(cfg()), GPT(cfg(final_norm=False))
    assert "transformer.ln_f.weight" in with_ln.state_dict()
    assert not any("ln_f" in k for k in without.state_dict())
    assert with_ln.num_parameters() - without.num_parameters() == 2 * 16


def test_mistake_7_positions_learned_table_and_order_blindness_without_positions():
    assert "transformer.wpe.weight" in GPT(cfg()).state_dict()
    for pos in ("sinusoidal", "rope", "alibi", "none"):
        assert "transformer.wpe.weight" not in GPT(cfg(pos_encoding=pos)).state_dict()
    x = ids(1, 6, seed=18)
    y = x.copy()
    y[0, [1, 3]] = y[0, [3, 1]]                       # swap two earlier tokens
    assert x[0, 1] != x[0, 3]
    for pos in POS:
        model = decisive(GPT(cfg(pos_encoding=pos, n_layer=1)))
        same = np.allclose(model(x)[0].data[0, -1], model(y)[0].data[0, -1], atol=1e-5)
        assert same == (pos == "none"), pos            # one layer without positions: a bag


def test_mistake_8_unmasked_padding_changes_left_padded_outputs():
    a = ids(1, 4, seed=19)
    batch = np.concatenate([np.full((1, 3), 5), a], axis=1)
    mask = np.array([[0, 0, 0, 1, 1, 1, 1]])
    for mask_padding, equal in ((True, True), (False, False)):
        model = decisive(GPT(cfg(mask_padding=mask_padding)))
        out = model(batch, attention_mask=mask)[0].data[0, 3:]
        assert np.allclose(out, model(a)[0].data[0], atol=1e-5) == equal


def test_mistake_11_cache_without_update_changes_cached_generation():
    # seeded sampling: the same logits give the same tokens, so any difference is the cache's
    model = decisive(GPT(cfg(kv_cache_update=False)))
    x = ids(3, 4, seed=20)
    cached = model.generate(x, 10, temperature=1.0, seed=0, use_cache=True)
    plain = model.generate(x, 10, temperature=1.0, seed=0, use_cache=False)
    np.testing.assert_array_equal(cached[:, :5], plain[:, :5])   # the prompt pass is the same
    assert (cached != plain).sum() > 5
    fixed = decisive(GPT(cfg()))
    np.testing.assert_array_equal(fixed.generate(x, 10, temperature=1.0, seed=0),
                                  fixed.generate(x, 10, temperature=1.0, seed=0, use_cache=False))


@pytest.mark.parametrize("switch", [dict(norm_placement="post"), dict(norm_placement="mixed"),
                                    dict(residual=False), dict(ffn_hidden=16),
                                    dict(tie_weights=False), dict(ln_axis=0),
                                    dict(final_norm=False), dict(mask_padding=False),
                                    dict(bias=False), dict(pos_encoding="rope", n_layer=3)])
def test_generation_with_every_switch_equals_greedy_recomputation(switch):
    # every fast path (KV cache, numpy-only decoding) must agree with the plain forward
    model = decisive(GPT(cfg(**switch)), std=0.15)
    x = ids(2, 4, seed=21)
    by_hand = _greedy_by_hand(model, x, 14)
    np.testing.assert_array_equal(model.generate(x, 14, top_k=1, use_cache=True), by_hand)
    np.testing.assert_array_equal(model.generate(x, 14, top_k=1, use_cache=False), by_hand)
