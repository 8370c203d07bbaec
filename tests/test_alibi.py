"""ALiBi (pos_encoding="alibi"): the slopes against the paper's, a tiny model's logits and
gradients against an independent PyTorch ALiBi forward, gradcheck through the biased attention,
cached generation against recomputing, and the fast path's fall-back to the reference."""
import math
import re

import numpy as np
import pytest

from tinygrad_gpt import GPT, GPTConfig, Tensor, fast, gradcheck
from tinygrad_gpt.model.attention import attend
from tinygrad_gpt.model.positions import alibi_bias, alibi_slopes

torch = pytest.importorskip("torch")


def paper_slopes(n: int) -> list[float]:
    """The slopes as the ALiBi authors' code computes them (Press et al. 2022, the closest power
    of two, then every other slope of twice that power), written out independently."""
    def power(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power(n)
    closest = 2 ** math.floor(math.log2(n))
    return power(closest) + paper_slopes(2 * closest)[0::2][:n - closest]


def test_slopes_for_8_heads_are_the_papers_halvings():
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=1e-12)
    np.testing.assert_allclose(alibi_slopes(4), [1 / 4, 1 / 16, 1 / 64, 1 / 256], rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 12, 16])
def test_slopes_follow_the_papers_rule_for_any_head_count(n):
    np.testing.assert_allclose(alibi_slopes(n), paper_slopes(n), rtol=1e-12)


def test_slopes_refuse_a_bad_head_count():
    with pytest.raises(ValueError, match=re.escape(
            "alibi_slopes: n_head must be a positive integer, got 0")):
        alibi_slopes(0)


def test_bias_is_minus_slope_times_distance():
    b = alibi_bias(np.arange(4), np.arange(4), 2, np.float64)     # (nh, T, Tk)
    assert b.shape == (2, 4, 4)
    assert b[0, 3, 0] == -0.0625 * 3 and b[1, 3, 1] == -(2 ** -8) * 2 and b[0, 2, 2] == 0
    batched = alibi_bias(np.array([[0, 1, 2], [5, 6, 7]]), np.array([[0, 1, 2], [5, 6, 7]]), 2)
    assert batched.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(batched[0], batched[1])           # only distances matter


# ---------------------------------------------------------------------------- PyTorch oracle
def torch_alibi_gpt(state: dict, cfg: GPTConfig, ids: np.ndarray) -> "torch.Tensor":
    """A pre-norm GPT-2 with ALiBi in plain PyTorch: scores q k^T / sqrt(hs) plus
    slope_h * (j - i), the causal mask, softmax; no position embedding; tied head."""
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in state.items()}
    nh, hs, c = cfg.n_head, cfg.head_size, cfg.n_embd
    t = ids.shape[1]
    ln = torch.nn.functional.layer_norm

    def lin(x, name):
        return x @ p[f"{name}.weight"] + p[f"{name}.bias"]

    i = torch.arange(t)
    rel = (i[None, :] - i[:, None]).to(torch.float64)              # j - i
    slopes = torch.tensor(paper_slopes(nh), dtype=torch.float64)[:, None, None]
    causal = torch.ones(t, t).tril().bool()
    x = p["transformer.wte.weight"][torch.tensor(ids)]
    for layer in range(cfg.n_layer):
        pre = f"transformer.h.{layer}"
        h = ln(x, (c,), p[f"{pre}.ln_1.weight"], p[f"{pre}.ln_1.bias"], cfg.layer_norm_eps)
        q, k, v = lin(h, f"{pre}.attn.c_attn").split(c, dim=-1)
        q, k, v = (a.view(-1, t, nh, hs).transpose(1, 2) for a in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(hs) + slopes * rel
        s = s.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (s @ v).transpose(1, 2).reshape(-1, t, c)
        x = x + lin(y, f"{pre}.attn.c_proj")
        h = ln(x, (c,), p[f"{pre}.ln_2.weight"], p[f"{pre}.ln_2.bias"], cfg.layer_norm_eps)
        h = torch.nn.functional.gelu(lin(h, f"{pre}.mlp.c_fc"), approximate="tanh")
        x = x + lin(h, f"{pre}.mlp.c_proj")
    x = ln(x, (c,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"],
           cfg.layer_norm_eps)
    return x @ p["transformer.wte.weight"].T, p


@pytest.mark.parametrize("n_head, n_embd", [(4, 16), (3, 12)])
@pytest.mark.parametrize("on", [False, True])
def test_logits_and_gradients_match_a_pytorch_alibi_model(n_head, n_embd, on):
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=n_head, n_embd=n_embd,
                    pos_encoding="alibi")
    model = GPT(cfg, seed=3)
    rng = np.random.default_rng(0)
    for p in model.parameters():                      # larger weights: attention not uniform
        p.data[...] = rng.normal(0, 0.3, p.shape) + (1.0 if p.ndim == 1 and
                                                      p.shape[0] == n_embd else 0.0)
    ids = rng.integers(0, 11, (2, 13))                # past block_size: no table to run out of
    targets = rng.integers(0, 11, (2, 13))
    with fast.enabled(on):
        logits, loss = model(ids, targets)
        model.zero_grad()
        loss.backward()
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()
             if k != "lm_head.weight"}
    ref, params = torch_alibi_gpt(state, cfg, ids)
    np.testing.assert_allclose(logits.data, ref.detach().numpy(), rtol=1e-4, atol=1e-4)
    ref_loss = torch.nn.functional.cross_entropy(ref.reshape(-1, 11),
                                                 torch.tensor(targets).reshape(-1))
    ref_loss.backward()
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    grads = dict(model.named_parameters())
    for name, t in params.items():
        np.testing.assert_allclose(grads[name].grad, t.grad.numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)


def test_distance_changes_the_output_only_through_the_bias():
    """Without the bias the same weights give different logits (the bias is used), and a token
    attends more to near keys in the head with the steepest slope."""
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8,
                    pos_encoding="alibi")
    model = GPT(cfg, seed=1)
    plain = GPT(cfg.replace(pos_encoding="none"), seed=1)
    ids = np.random.default_rng(1).integers(0, 11, (1, 8))
    assert not np.allclose(model(ids)[0].data, plain(ids)[0].data, atol=1e-6)
    model.record_attention()
    model(ids)
    att = model.attention_maps()[0][0, 0, -1]          # head 0 (slope 1/16), last query
    assert att[-1] > att[0]                            # at init scores are ~0: bias decides


def test_gradcheck_through_the_biased_attention():
    rng = np.random.default_rng(2)
    q, k, v = (Tensor(rng.normal(size=(1, 2, 5, 3)), requires_grad=True) for _ in range(3))
    allowed = np.tril(np.ones((5, 5), dtype=bool))[None, None]
    bias = alibi_bias(np.arange(5), np.arange(5), 2, np.float64)
    assert gradcheck(lambda q, k, v: attend(q, k, v, allowed, None, bias)[0], q, k, v)


# ---------------------------------------------------------------------------- generation, fast
@pytest.mark.parametrize("on", [False, True])
def test_cached_generation_gives_the_tokens_of_recomputing_past_block_size(on):
    cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8,
                    pos_encoding="alibi")
    model = GPT(cfg, seed=4)
    rng = np.random.default_rng(5)
    for p in model.parameters():
        p.data[...] += rng.normal(0, 0.3, p.shape)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    with fast.enabled(on):
        cached = model.generate(prompt, 12, top_k=1, use_cache=True)
        again = model.generate(prompt, 12, top_k=1, use_cache=False)
    np.testing.assert_array_equal(cached, again)
    assert cached.shape == (2, 15)                    # 15 > block_size 6
    # one step by hand: the last logits of the full forward pick the last generated token
    logits = model(cached[:, :-1])[0].data[:, -1]
    np.testing.assert_array_equal(logits.argmax(-1), cached[:, -1])


def test_fast_path_falls_back_to_the_reference_attention_for_alibi():
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    ids = np.random.default_rng(6).integers(0, 11, (2, 8))
    with fast.enabled():
        for pos, fused in (("learned", True), ("alibi", False)):
            logits, _ = GPT(cfg.replace(pos_encoding=pos), seed=0)(ids)
            ops = set()
            stack = [logits]
            while stack:
                node = stack.pop()
                if id(node) in ops:
                    continue
                ops.add(id(node))
                ops.add(node.op)
                stack.extend(node.parents)
            assert ("attention" in ops) is fused, pos
            assert ("softmax" in ops) is not fused, pos


@pytest.mark.parametrize("pos", ["learned", "alibi"])
def test_fast_reference_fallback_fills_the_cache(pos):
    """A model with an overridden hook is not read by the numpy decode, so generation runs the
    reference forward with fast on: its prompt step must write the cache, not take the fused
    attention (which has no cache)."""
    class Mine(GPT):
        def check_length(self, t: int) -> None:
            super().check_length(t)

    cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=8,
                    pos_encoding=pos)
    model = Mine(cfg, seed=2)
    rng = np.random.default_rng(3)
    for p in model.parameters():
        p.data[...] += rng.normal(0, 0.3, p.shape)
    prompt = np.array([[1, 2, 3, 4]])
    with fast.enabled():
        cached = model.generate(prompt, 8, top_k=1, use_cache=True)
    np.testing.assert_array_equal(cached, model.generate(prompt, 8, top_k=1, use_cache=False))
