"""nn.Module discovery and state dicts, the layers, and the optimizers (SGD, AdamW, clipping,
warmup + cosine) against PyTorch step for step."""
import math
import re

import numpy as np
import pytest

from tinygrad_gpt import Tensor, nn, optim

torch = pytest.importorskip("torch")


class Inner(nn.Module):
    def __init__(self, rng):
        self.lin = nn.Linear(3, 3, rng=rng)
        self.ln = nn.LayerNorm(3)
        self.drop = nn.Dropout(0.5, rng)

    def forward(self, x):
        return self.drop(self.ln(self.lin(x)))


class Outer(nn.Module):
    def __init__(self, rng):
        self.emb = nn.Embedding(10, 3, rng=rng)
        self.blocks = nn.ModuleList([Inner(rng), Inner(rng)])
        self.head = nn.Linear(3, 3, bias=False, rng=rng)
        self.tied = self.emb.weight            # the same tensor under a second name
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))

    def forward(self, ids):
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x)
        return self.head(x) * self.scale


NAMES = ["tied", "scale", "emb.weight",
         "blocks.0.lin.weight", "blocks.0.lin.bias", "blocks.0.ln.weight", "blocks.0.ln.bias",
         "blocks.1.lin.weight", "blocks.1.lin.bias", "blocks.1.ln.weight", "blocks.1.ln.bias",
         "head.weight"]


# ---------------------------------------------------------------------------- Module
def test_named_parameters_are_dotted_and_tied_tensors_listed_once(rng):
    m = Outer(rng)
    names = [n for n, _ in m.named_parameters()]
    assert sorted(names) == sorted(n for n in NAMES if n != "emb.weight")
    assert len(m.parameters()) == len(set(map(id, m.parameters()))) == 11
    assert m.num_parameters() == 30 + 1 + 2 * (9 + 3 + 3 + 3) + 9
    with_dups = [n for n, _ in m.named_parameters(remove_duplicate=False)]
    assert sorted(with_dups) == sorted(NAMES)
    sd = m.state_dict()
    assert sorted(sd) == sorted(NAMES)
    np.testing.assert_array_equal(sd["tied"], sd["emb.weight"])
    sd["head.weight"][...] = 7.0               # the state dict holds copies
    assert not np.any(m.head.weight.data == 7.0)


def test_named_parameters_follow_definition_order(rng):
    inner = Inner(rng)
    assert [n for n, _ in inner.named_parameters()] == ["lin.weight", "lin.bias", "ln.weight",
                                                       "ln.bias"]


def test_load_state_dict_round_trip_and_strict_errors(rng):
    a, b = Outer(rng), Outer(np.random.default_rng(1))
    b.load_state_dict(a.state_dict())
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
    sd = a.state_dict()
    del sd["head.weight"]
    sd["extra"] = np.zeros(2, dtype=np.float32)
    with pytest.raises(KeyError, match=re.escape(
            "load_state_dict: missing keys ['head.weight'], unexpected keys ['extra']")):
        b.load_state_dict(sd)
    b.load_state_dict(sd, strict=False)        # missing keep their values, extra are ignored


def test_load_state_dict_shape_error_names_key_and_both_shapes_and_changes_nothing(rng):
    m = Outer(rng)
    before = m.state_dict()
    sd = Outer(np.random.default_rng(5)).state_dict()
    sd["blocks.1.lin.weight"] = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=re.escape(
            "load_state_dict: 'blocks.1.lin.weight' has shape (4, 3) in the state dict but "
            "(3, 3) in the model")):
        m.load_state_dict(sd)
    after = m.state_dict()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    sd = m.state_dict()
    sd["scale"] = np.ones(1, dtype=np.int64)
    with pytest.raises(TypeError, match=re.escape(
            "load_state_dict: 'scale' has dtype int64, expected floating point")):
        m.load_state_dict(sd)


def test_train_eval_reach_every_submodule_and_zero_grad(rng):
    m = Outer(rng)
    assert m.eval() is m
    assert all(not sub.training for _, sub in m.named_modules())
    m.train()
    assert all(sub.training for _, sub in m.named_modules())
    out = m(np.array([[1, 2, 3]]))
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_dropout_modes(rng):
    d = nn.Dropout(0.25, np.random.default_rng(0))
    x = Tensor(np.ones((200, 200), dtype=np.float32))
    y = d(x).data
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    d.eval()
    assert d(x) is x
    with pytest.raises(ValueError, match=re.escape("Dropout: p must be in [0, 1), got 1.0")):
        nn.Dropout(1.0)


# ---------------------------------------------------------------------------- layers
def test_linear_stores_weight_in_out_and_matches_torch(rng):
    lin = nn.Linear(5, 3, rng=rng)
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (3,)
    x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    y = lin(Tensor(x))
    ref = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(lin.weight.data.T),
                                     torch.from_numpy(lin.bias.data))
    np.testing.assert_allclose(y.data, ref.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=re.escape(
            "Linear: input of shape (2, 4) has 4 features, expected 5")):
        lin(Tensor(np.zeros((2, 4), dtype=np.float32)))


def test_embedding_accumulates_repeated_ids_and_names_the_range(rng):
    emb = nn.Embedding(6, 2, rng=rng)
    ids = np.array([[1, 1, 4], [1, 0, 5]])
    emb(ids).sum().backward()
    counts = np.bincount(ids.ravel(), minlength=6)[:, None]
    np.testing.assert_array_equal(emb.weight.grad, np.broadcast_to(counts, (6, 2)))
    with pytest.raises(IndexError, match=re.escape(
            "embedding: id 6 is out of range for 6 rows (allowed 0..5)")):
        emb(np.array([0, 6]))


def test_layernorm_matches_torch_with_eps_1e5_forward_and_backward(rng):
    ln = nn.LayerNorm(8)
    assert ln.eps == 1e-5
    ln.weight.data[...] = rng.normal(1, 0.2, 8)
    ln.bias.data[...] = rng.normal(0, 0.2, 8)
    x = (rng.normal(size=(3, 5, 8)) * 0.01).astype(np.float32)   # small variance: eps matters
    g = rng.normal(size=(3, 5, 8)).astype(np.float32)
    xt = Tensor(x, requires_grad=True)
    ln(xt).backward(g)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(ln.weight.data, requires_grad=True)
    tb = torch.tensor(ln.bias.data, requires_grad=True)
    ref = torch.nn.functional.layer_norm(tx, (8,), tw, tb, eps=1e-5)
    ref.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ln(Tensor(x)).data, ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ln.weight.grad, tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ln.bias.grad, tb.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_layernorm_over_batch_axis_mixes_samples(rng):
    ln = nn.LayerNorm(4, axis=0)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    y1 = ln(Tensor(x)).data
    x2 = x.copy()
    x2[2] += 5.0
    y2 = ln(Tensor(x2)).data
    assert not np.allclose(y1[0], y2[0])         # sample 0 moved because sample 2 did
    np.testing.assert_allclose(y1.mean(axis=0), 0, atol=1e-6)


# ---------------------------------------------------------------------------- optimizers
def _twin_params(rng, shapes):
    arrays = [rng.normal(size=s).astype(np.float32) for s in shapes]
    ours = [nn.Parameter(a.copy()) for a in arrays]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    return ours, theirs


def _set_grads(ours, theirs, rng, scale=1.0):
    for p, q in zip(ours, theirs):
        g = (rng.normal(size=p.shape) * scale).astype(np.float32)
        p.grad = g.copy()
        q.grad = torch.from_numpy(g.copy())


SHAPES = [(4, 3), (3,), (2, 5, 2)]


@pytest.mark.parametrize("block", [optim.AdamW.BLOCK, 5])   # 5: the update in many blocks
def test_adamw_matches_torch_step_for_step_with_groups_and_lr_changes(rng, monkeypatch, block):
    monkeypatch.setattr(optim.AdamW, "BLOCK", block)
    ours, theirs = _twin_params(rng, SHAPES)
    ours[0].data = np.asfortranarray(ours[0].data)   # not C-contiguous: updated whole
    opt = optim.AdamW([{"params": [ours[0], ours[2]], "weight_decay": 0.1},
                       {"params": [ours[1]], "weight_decay": 0.0}],
                      lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    ref = torch.optim.AdamW([{"params": [theirs[0], theirs[2]], "weight_decay": 0.1},
                             {"params": [theirs[1]], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    for step in range(25):
        lr = optim.warmup_cosine(step, 1e-2, 5, 25, 1e-3)
        opt.set_lr(lr)
        for g in ref.param_groups:
            g["lr"] = lr
        _set_grads(ours, theirs, rng, scale=10.0 ** (step % 3 - 1))
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {step}")


def test_sgd_with_momentum_and_weight_decay_matches_torch(rng):
    ours, theirs = _twin_params(rng, SHAPES)
    opt = optim.SGD(ours, lr=0.05, momentum=0.9, weight_decay=0.01)
    ref = torch.optim.SGD(theirs, lr=0.05, momentum=0.9, weight_decay=0.01)
    for _ in range(15):
        _set_grads(ours, theirs, rng)
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_sgd_skips_parameters_without_grad(rng):
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    optim.SGD([p], lr=1.0).step()
    np.testing.assert_array_equal(p.data, 1.0)


def test_weight_decay_groups_decay_only_matrices(rng):
    model = Outer(rng)
    groups = optim.weight_decay_groups(model, 0.5)
    decayed = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert names == {"tied", "blocks.0.lin.weight", "blocks.1.lin.weight", "head.weight"}
    assert groups[0]["weight_decay"] == 0.5 and groups[1]["weight_decay"] == 0.0
    before = model.state_dict()
    opt = optim.AdamW(groups, lr=0.1)
    for p in model.parameters():
        p.grad = np.zeros_like(p.data)         # no gradient: only decay can move a weight
    opt.step()
    after = model.state_dict()
    for name in before:
        factor = 1 - 0.1 * 0.5 if name in names | {"emb.weight"} else 1.0
        np.testing.assert_allclose(after[name], before[name] * np.float32(factor), rtol=1e-6,
                                   err_msg=name)


def test_optimizer_rejects_duplicates_and_non_grad_tensors():
    p = nn.Parameter(np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="appears twice"):
        optim.AdamW([p, p])
    with pytest.raises(TypeError, match="requires grad"):
        optim.SGD([Tensor(np.zeros(2, dtype=np.float32))])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])


def test_optimizer_state_dict_resumes_identically(rng):
    a, _ = _twin_params(rng, SHAPES)
    b = [nn.Parameter(p.data.copy()) for p in a]
    opt_a = optim.AdamW(a, lr=1e-2)
    grads = [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(6)]
    for gs in grads[:3]:
        for p, g in zip(a, gs):
            p.grad = g.copy()
        opt_a.step()
    for p, q in zip(a, b):
        q.data[...] = p.data
    opt_b = optim.AdamW(b, lr=1.0)
    opt_b.load_state_dict(opt_a.state_dict())
    for gs in grads[3:]:
        for p, q, g in zip(a, b, gs):
            p.grad, q.grad = g.copy(), g.copy()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_clip_grad_norm_matches_torch_and_lets_inf_through(rng):
    ours, theirs = _twin_params(rng, SHAPES)
    _set_grads(ours, theirs, rng, scale=3.0)
    total = optim.clip_grad_norm(ours, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert total == pytest.approx(ref.item(), rel=1e-6)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert math.sqrt(sum(float((p.grad ** 2).sum()) for p in ours)) == pytest.approx(1.0, 1e-5)
    small = [nn.Parameter(np.zeros(2, dtype=np.float32))]
    small[0].grad = np.array([0.3, 0.4], dtype=np.float32)
    assert optim.clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small[0].grad, np.float32([0.3, 0.4]))  # under the limit
    small[0].grad = np.array([np.inf, 1.0], dtype=np.float32)
    assert optim.clip_grad_norm(small, 1.0) == math.inf
    assert small[0].grad[1] == 1.0


def test_warmup_cosine_schedule_values():
    lr, lo = 1.0, 0.1
    f = [optim.warmup_cosine(s, lr, 10, 110, lo) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)                   # cosine starts at the peak
    assert f[60] == pytest.approx((lr + lo) / 2)         # halfway down
    assert f[110] == f[119] == lo
    assert all(a <= b for a, b in zip(f[:10], f[1:10]))  # warmup rises
    assert all(a >= b - 1e-12 for a, b in zip(f[10:110], f[11:111]))  # then only falls
    assert optim.warmup_cosine(0, 3e-4, 0, 100) == pytest.approx(3e-4)


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.AdamW(p, lr=float("nan")), "optimizer: lr must be a finite number in "
                                                "[0, inf), got nan"),
    (lambda p: optim.AdamW(p, betas=(0.9, 1.0)), "optimizer: beta2 must be a finite number in "
                                                 "[0, 1), got 1.0"),
    (lambda p: optim.AdamW(p, eps=0.0), "optimizer: eps must be a finite number in (0, inf), "
                                        "got 0.0"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "optimizer: weight_decay must be a finite "
                                                  "number in [0, inf), got -0.1"),
    (lambda p: optim.AdamW([{"params": p, "weight_decay": float("nan")}]),
     "optimizer: weight_decay must be a finite number in [0, inf), got nan"),
    (lambda p: optim.SGD(p, lr=-1.0), "optimizer: lr must be a finite number in [0, inf), "
                                      "got -1.0"),
    (lambda p: optim.SGD(p, lr=0.1).set_lr(float("inf")),
     "optimizer.set_lr: lr must be a finite number in [0, inf), got inf"),
])
def test_optimizer_hyper_parameters_must_be_finite_and_in_range(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make([Tensor(np.ones(3, dtype=np.float32), requires_grad=True)])


def test_optimizer_state_with_a_bad_step_count_or_structure_is_refused():
    p = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    opt = optim.AdamW([p])
    good = opt.state_dict()
    for bad, message in [({**good, "step_count": -1}, "step_count must be an integer >= 0, got -1"),
                         ({**good, "groups": {}}, "groups must be a list of objects"),
                         ({**good, "state": [[1]]}, "state must be a list of objects of arrays"),
                         ({"groups": []}, "expected an object with step_count, groups and state"),
                         ({**good, "groups": [{**good["groups"][0], "betas": (0.9, 2)}]},
                          "beta2 must be a finite number in [0, 1), got 2")]:
        with pytest.raises(ValueError, match=re.escape(f"optimizer.load_state_dict: {message}")):
            opt.load_state_dict(bad)
