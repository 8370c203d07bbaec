"""Mistake 9: training through argmax. A loss computed from the model's argmax prediction has
exactly zero gradient with respect to every parameter; teacher forcing (cross-entropy on the
true next token) trains, and REINFORCE with a baseline raises a reward on sampled tokens."""
from __future__ import annotations

import math
from typing import Callable

from pathlib import Path

import numpy as np

from .. import functional as F
from .. import optim, viz
from ..data import get_batch
from ..engine import Tensor, no_grad, record_gradients
from ..model import GPT
from ..nn import Module
from .base import (Deep, Figure, Measured, Mistake, Published,
                   Verdict, register)
from .common import (LAB_MODEL, LabData, build_model, check_side, evidence, model_sizes, progress,
                     small_config, train)
from .plotting import figure, graph_figure, graphs_dot, label_axes

EXPLANATION = """\
Argmax picks the index of the largest logit. Nudge any weight by a tiny amount and the largest
logit stays the largest, so the chosen token, and any loss computed from it (say, the fraction
of wrong predictions), does not change at all: its derivative is zero almost everywhere and
undefined at the ties. Backpropagation can only follow that: the gradient reaching every
parameter through an argmax is exactly zero, so the model never learns, however long it trains.
(Our engine cuts the path on purpose: argmax returns integer data with no gradient, so calling
backward on such a loss is an error that says so, and the graph shows where the path ends.)
Two ways out. For learning to predict text, teacher forcing: score the probability the model
gives to the true next token (cross-entropy), which is smooth in every weight. When the signal
only exists for tokens the model itself chose (a reward, as in RLHF), sample the token instead
of taking the argmax, and use the policy gradient (REINFORCE): raise log p(sampled token) in
proportion to its reward minus a baseline. The baseline (the average reward) does not change
the expected gradient but makes each estimate less noisy, the more so the further the average
reward is from zero; we measure by how much. We also add a small entropy bonus, which keeps
the policy from collapsing onto one answer, and we run a placebo: the same updates with coin-flip
rewards that ignore the sampled token, to show that the gain comes from the reward's signal and
not from the noise of training."""

IGNORE = -100
# teacher forcing and REINFORCE steps, draws for the gradient variance, held-out windows
TIERS = {"quick": dict(**LAB_MODEL["quick"], steps=60, reinforce_steps=120, draws=8,
                       eval_windows=32),
         "full": dict(**LAB_MODEL["full"], steps=150, reinforce_steps=150, draws=16,
                      eval_windows=64)}
REWARD_MARGIN = 0.1   # expected-reward gain that counts as learning (measured +0.29 .. +0.46)


def shifted_targets(ids: np.ndarray) -> np.ndarray:
    """Next-token targets from the ids themselves; the last position has none (ignored)."""
    tg = np.full_like(ids, IGNORE)
    tg[:, :-1] = ids[:, 1:]
    return tg


def argmax_loss(logits: Tensor, targets: np.ndarray) -> Tensor:
    """The mistake: the error rate of the argmax prediction, a perfectly sensible number to
    want lower, and a loss with no gradient at all."""
    keep = targets != IGNORE
    pred = logits.argmax(-1)                                  # (B, T) integer ids, no gradient
    miss = (pred - Tensor(np.where(keep, targets, 0))).abs() > 0
    weight = Tensor((keep / max(int(keep.sum()), 1)).astype(np.float32))
    return (miss.astype(np.float32) * weight).sum()


class NextTokenModel(Module):
    """A GPT whose call computes its own next-token loss: `logits, loss = model(ids)`, through
    argmax (loss="argmax", the mistake) or by cross-entropy (loss="cross_entropy")."""

    def __init__(self, gpt: GPT, loss: str):
        if loss not in ("argmax", "cross_entropy"):
            raise ValueError(f"NextTokenModel: loss must be 'argmax' or 'cross_entropy', got "
                             f"{loss!r}")
        self.gpt = gpt
        self.loss_kind = loss

    def forward(self, idx, targets=None) -> tuple[Tensor, Tensor]:
        ids = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
        tg = shifted_targets(ids) if targets is None else np.asarray(targets)
        logits, _ = self.gpt(ids)
        if self.loss_kind == "argmax":
            return logits, argmax_loss(logits, tg)
        return logits, F.cross_entropy(logits, tg, ignore_index=IGNORE)


# ---------------------------------------------------------------- REINFORCE

def char_classes(itos: list) -> np.ndarray:
    """0 lowercase, 1 uppercase, 2 digit, 3 whitespace, 4 anything else."""
    def kind(c: str) -> int:
        return 0 if c.islower() else 1 if c.isupper() else 2 if c.isdigit() else \
            3 if c.isspace() else 4
    return np.array([kind(c) for c in itos])


def class_reward(samples: np.ndarray, targets: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """1 when the sampled character is the same kind as the true next one, else 0."""
    return (classes[samples] == classes[targets]).astype(np.float32)


def expected_rewards(model: GPT, x: np.ndarray, y: np.ndarray,
                     classes: np.ndarray) -> np.ndarray:
    """Exact expected reward of the sampling policy at every position (B, T): sum over
    tokens of p * reward (what a perfect critic would predict)."""
    with no_grad():
        z = model(x)[0].data.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    hit = classes[None, None, :] == classes[y][..., None]     # (B, T, V)
    return (p * hit).sum(-1)


def expected_reward(model: GPT, x: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Exact mean reward of the sampling policy on (x, y)."""
    return float(expected_rewards(model, x, y, classes).mean())


def _sample(logp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = np.exp(logp.astype(np.float64))
    u = rng.random(p.shape[:-1] + (1,))
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1)


def policy_gradient_loss(model: GPT, x: np.ndarray, y: np.ndarray, classes: np.ndarray,
                         rng: np.random.Generator,
                         baselines: tuple = (0.0,)) -> tuple[list, np.ndarray]:
    """Sample one token at every position (teacher-forced context), reward it, and return
    -mean((r - b) log p(sample)) for each baseline b (one forward, shared graph), and r."""
    logits, _ = model(x)
    logp = logits.log_softmax(-1)                             # (B, T, V)
    s = _sample(logp.data, rng)
    r = class_reward(s, y, classes)
    bi, ti = np.indices(s.shape)
    picked = logp[bi, ti, s]                                  # (B, T) log p(sampled token)
    losses = [-(picked * Tensor((r - b).astype(np.float32))).mean() for b in baselines]
    return losses, r


def _flat_grad(model: Module) -> np.ndarray:
    return np.concatenate([(p.grad if p.grad is not None else np.zeros_like(p.data)).ravel()
                           for p in model.parameters()])


def gradient_variance(model: GPT, x: np.ndarray, y: np.ndarray, classes: np.ndarray,
                      draws: int, seed: int) -> dict:
    """Total variance (mean squared distance to the mean) of the REINFORCE gradient over
    `draws` independent samplings: without a baseline ("none"), with the average reward as
    one ("mean"), and with each position's expected reward, a perfect critic ("value")."""
    rng = np.random.default_rng(seed)
    value = expected_rewards(model, x, y, classes)
    baselines = {"none": 0.0, "mean": float(value.mean()), "value": value}
    grads: dict = {k: [] for k in baselines}
    for _ in range(draws):
        losses, _ = policy_gradient_loss(model, x, y, classes, rng, tuple(baselines.values()))
        for k, loss in zip(baselines, losses):
            model.zero_grad()
            loss.backward(retain_graph=True)
            grads[k].append(_flat_grad(model))
    model.zero_grad()
    out = {}
    for k, gs in grads.items():
        g = np.array(gs, dtype=np.float64)
        out[k] = float(((g - g.mean(0)) ** 2).sum(1).mean())
    return out


REINFORCE_LR = 3e-3   # 1e-2: > 99.8% of the policy on lowercase letters after 80 steps
# Without it a nearly deterministic policy is one rare sample away from collapse: Adam scales
# the first large gradient after a quiet stretch up to a full step (measured: the 4-layer
# model's expected reward fell from 0.65 to 0.37 in its last 25 of 300 steps, seed 2).
ENTROPY_BONUS = 0.01


def reinforce(model: GPT, data: LabData, steps: int, seed: int, lr: float = REINFORCE_LR,
              batch_size: int = 16, placebo: bool = False, entropy: float = ENTROPY_BONUS,
              reward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
              ) -> list:
    """REINFORCE with a running-average baseline and an entropy bonus; returns the mean reward
    of the sampled tokens at every step. `reward(samples, x, y)` (each (B, T)) scores them;
    None: the kind of the sampled character against the true next one (`class_reward`).
    placebo=True is the control: the update uses coin flips with the batch's average reward
    instead of the rewards, so it has the same size and noise but carries no information about
    which token was a good choice."""
    classes = char_classes(data.itos)
    rng = np.random.default_rng(seed)
    sample_rng = np.random.default_rng(seed + 7)
    coin_rng = np.random.default_rng(seed + 11)
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    baseline, rewards = None, []
    bar = progress(steps, "placebo" if placebo else "reinforce")
    for _ in range(steps):
        x, y = get_batch(data.train, model.config.block_size, batch_size, rng)
        logits, _ = model(x)
        logp = logits.log_softmax(-1)                         # (B, T, V)
        s = _sample(logp.data, sample_rng)
        r = class_reward(s, y, classes) if reward is None else reward(s, x, y)
        signal = (coin_rng.random(r.shape) < r.mean()).astype(np.float32) if placebo else r
        b = float(signal.mean()) if baseline is None else baseline
        bi, ti = np.indices(s.shape)
        loss = -(logp[bi, ti, s] * Tensor((signal - b).astype(np.float32))).mean()
        if entropy:
            loss = loss + entropy * (logp.exp() * logp).sum(-1).mean()      # - entropy * H
        model.zero_grad()
        loss.backward()
        optim.clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        rewards.append(float(r.mean()))
        mean_s = float(signal.mean())
        baseline = mean_s if baseline is None else 0.9 * baseline + 0.1 * mean_s
        bar.update(reward=rewards[-1])
    bar.close()
    return rewards


def reward_gain(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """Mean change of the expected reward over a fixed evaluation set (B, T), and its standard
    error over the B windows (paired: the same windows before and after)."""
    d = (after - before).mean(1)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0


def constant_policy_reward(y: np.ndarray, classes: np.ndarray) -> float:
    """The reward of the best context-free policy: always answer the most common kind."""
    return float(np.bincount(classes[y].ravel(), minlength=int(classes.max()) + 1).max()
                 / y.size)


# ---------------------------------------------------------------- the experiment

def _error_rate(model: GPT, x: np.ndarray, y: np.ndarray) -> float:
    with no_grad():
        return float((model(x)[0].data.argmax(-1) != y).mean())


def directional_derivatives(model: NextTokenModel, x: np.ndarray, y: np.ndarray,
                            directions: int, eps: float, seed: int) -> list:
    """(loss(theta + eps d) - loss(theta)) / eps along random unit directions d of all
    parameters: the derivative measured without backpropagation."""
    rng = np.random.default_rng(seed)
    params = model.parameters()
    with no_grad():
        base = model(x, y)[1].item()
        out = []
        for _ in range(directions):
            d = [rng.normal(size=p.shape).astype(p.dtype) for p in params]
            norm = math.sqrt(sum(float(np.vdot(v, v)) for v in d))
            for p, v in zip(params, d):
                p.data += eps * v / norm
            out.append((model(x, y)[1].item() - base) / eps)
            for p, v in zip(params, d):
                p.data -= eps * v / norm
    return out


def _gradient_report(model: NextTokenModel, x: np.ndarray, y: np.ndarray) -> tuple[dict, Tensor]:
    _, loss = model(x, y)
    model.zero_grad()
    error = ""
    try:
        with record_gradients():
            loss.backward()
    except RuntimeError as e:
        error = str(e)
    params = model.parameters()
    grads = [p.grad if p.grad is not None else np.zeros_like(p.data) for p in params]
    nonzero = sum(int(np.any(g != 0)) for g in grads)
    report = {"loss_requires_grad": loss.requires_grad, "backward_error": error,
              "parameters": len(params), "nonzero_grad_params": nonzero,
              "grad_max_abs": float(max(np.abs(g).max() for g in grads))}
    return report, loss


def _argmax_graph(model: NextTokenModel, x: np.ndarray, y: np.ndarray) -> Tensor:
    """The argmax loss with its graph, gradients recorded: argmax is piecewise constant, so
    d(loss)/d(logits) is exactly 0, and that zero is what reaches every weight."""
    logits, loss = model(x, y)
    with record_gradients():
        logits.backward(np.zeros_like(logits.data))
    model.zero_grad()
    return loss


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    cfg = small_config(data.vocab_size, True, **model_sizes(settings))
    t = cfg.block_size
    x, y = get_batch(data.val, t, 8, np.random.default_rng(seed + 1))
    classes = char_classes(data.itos)

    # wrong: a loss through argmax
    wrong = NextTokenModel(GPT(cfg, seed=seed), "argmax")
    w, _ = _gradient_report(wrong, x, y)
    wrong_root = _argmax_graph(wrong, x, y)
    dd = directional_derivatives(wrong, x, y, 4, 1e-3, seed)
    w.update(directional_derivative_max_abs=float(np.max(np.abs(dd))),
             val_error_rate=_error_rate(wrong.gpt, x, y))

    # fixed: teacher forcing, same initial weights
    fixed = NextTokenModel(GPT(cfg, seed=seed), "cross_entropy")
    f, fixed_loss = _gradient_report(fixed, x, y)
    dot = graphs_dot([viz.trace(wrong_root), viz.trace(fixed_loss)],
                     ["argmax loss: the path is cut at argmax (orange octagon, \"gradient cut "
                      "here\"), every weight gets exactly 0", "teacher forcing: cross-entropy, "
                      "gradient reaches every parameter"], depth=1,
                     title="mistake 9: gradient through argmax")
    dd = directional_derivatives(fixed, x, y, 4, 1e-3, seed)
    f["directional_derivative_max_abs"] = float(np.max(np.abs(dd)))
    f["val_error_rate_before"] = _error_rate(fixed.gpt, x, y)
    with no_grad():
        f["val_loss_before"] = fixed.gpt(x, y)[1].item()
    log = train(fixed.gpt, data, settings["steps"], seed=seed, what="teacher forcing")
    f["val_error_rate"] = _error_rate(fixed.gpt, x, y)
    with no_grad():
        f["val_loss_after"] = fixed.gpt(x, y)[1].item()
    f["train_loss_end"] = float(np.mean(log.loss[-10:]))

    # REINFORCE with a baseline on sampled tokens, same initial weights; the reward is
    # measured exactly (no sampling) on a fixed set of held-out windows, before and after, and
    # against a placebo run whose rewards ignore the sampled token
    policy = GPT(cfg, seed=seed)
    var = gradient_variance(policy, x, y, classes, settings["draws"], seed + 3)
    xe, ye = get_batch(data.val, t, settings["eval_windows"], np.random.default_rng(seed + 2))
    start = expected_rewards(policy, xe, ye, classes)
    r: dict = {"eval_windows": len(xe),
               "expected_reward_before": float(start.mean()),
               "grad_variance_no_baseline": var["none"],
               "grad_variance_with_baseline": var["mean"],
               "grad_variance_value_baseline": var["value"],
               "variance_reduction": var["none"] / max(var["mean"], 1e-30),
               "variance_reduction_value_baseline": var["none"] / max(var["value"], 1e-30)}
    steps = settings["reinforce_steps"]
    rewards = reinforce(policy, data, steps, seed)
    end = expected_rewards(policy, xe, ye, classes)
    placebo = GPT(cfg, seed=seed)
    placebo_rewards = reinforce(placebo, data, steps, seed, placebo=True)
    r["expected_reward_after"] = float(end.mean())
    r["reward_gain"], r["reward_gain_stderr"] = reward_gain(start, end)
    r["placebo_reward_after"] = expected_reward(placebo, xe, ye, classes)
    r["placebo_gain"] = r["placebo_reward_after"] - r["expected_reward_before"]
    r["constant_policy_reward"] = constant_policy_reward(ye, classes)
    k = max(1, len(rewards) // 10)
    r["reward_first"] = float(np.mean(rewards[:k]))
    r["reward_last"] = float(np.mean(rewards[-k:]))
    return Measured({"wrong": w, "fixed": f, "reinforce": r},
                    {"reinforce_reward": rewards, "placebo_reward": placebo_rewards,
                     "teacher_forcing_loss": log.loss},
                    figures={"m09_argmax_cut": dot},
                    notes="wrong backward error: " + w["backward_error"])


def verdict(metrics: dict, context: dict) -> Verdict:
    w, f, r = metrics["wrong"], metrics["fixed"], metrics["reinforce"]
    # the gain must be large, three standard errors of the evaluation set away from zero, and
    # well above what the same number of uninformed updates does (measured -0.02 .. +0.02)
    learns = (r["reward_gain"] > REWARD_MARGIN
              and r["reward_gain"] > 3 * r["reward_gain_stderr"]
              and r["reward_gain"] > r["placebo_gain"] + REWARD_MARGIN)
    # the mechanism: exactly zero gradient through argmax where teacher forcing learns; the
    # REINFORCE gain is reported: at this size it ends level with the best constant answer
    shown = bool(
        w["nonzero_grad_params"] == 0 and w["grad_max_abs"] == 0.0
        and w["directional_derivative_max_abs"] == 0.0
        and f["nonzero_grad_params"] == f["parameters"]
        and f["val_loss_after"] < f["val_loss_before"] - 0.3)
    kind = evidence(False, shown)
    words = (f"zero gradient through argmax ({w['nonzero_grad_params']} of "
             f"{w['parameters']} parameters reached); REINFORCE reward "
             f"{r['expected_reward_after']:.2f} against {r['constant_policy_reward']:.2f} "
             f"for the best constant answer")
    return Verdict(kind, words,
        f"through argmax {w['nonzero_grad_params']} of {w['parameters']} parameters "
        f"get a non-zero gradient (max |grad| {w['grad_max_abs']:g}, finite differences "
        f"{w['directional_derivative_max_abs']:g}); teacher forcing reaches all "
        f"{f['parameters']} and lowers the validation loss from "
        f"{f['val_loss_before']:.2f} to {f['val_loss_after']:.2f}; REINFORCE "
        f"{'raises' if learns else 'does not clearly raise'} the expected reward on "
        f"{r['eval_windows']} held-out windows from "
        f"{r['expected_reward_before']:.2f} to {r['expected_reward_after']:.2f} "
        f"(+{r['reward_gain']:.2f} +- {r['reward_gain_stderr']:.2f}; the same updates "
        f"with rewards that ignore the sampled token end at "
        f"{r['placebo_reward_after']:.2f}; always answering the most common kind earns "
        f"{r['constant_policy_reward']:.2f}); the average reward as a baseline cuts the "
        f"gradient variance {r['variance_reduction']:.1f}x, each position's expected "
        f"reward {r['variance_reduction_value_baseline']:.1f}x")


def _rewards(r: dict, path: Path) -> Path:
    def draw(fig) -> None:
        ax = fig.add_subplot()
        for key, label in (("reinforce_reward", "reward of the sampled tokens"),
                           ("placebo_reward", "placebo: the same updates from coin-flip "
                                              "rewards")):
            ys = np.asarray(r["series"][key])
            k = max(1, len(ys) // 10)
            smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
            line, = ax.plot(ys, lw=0.8, alpha=0.3)
            ax.plot(np.arange(k - 1, len(ys)), smooth, lw=1.6, color=line.get_color(),
                    label=f"{label} (moving average of {k})")
        label_axes(ax, "step", "reward (sampled char of the right kind)",
                   "REINFORCE with a baseline on sampled tokens")

    return figure(path, draw, 7.0, 4.0)


FIGURES = (
    graph_figure("m09_argmax_cut",
                 "The same model's graph, folded by layer. Above: the prediction goes through "
                 "argmax, drawn as an orange octagon marked \"gradient cut here\": the error "
                 "rate computed from its integer output cannot send anything back, and what "
                 "reaches the weights is exactly zero (grey). Below: cross-entropy on the true "
                 "next token, coloured by the gradient each part receives."),
    Figure("m09_reinforce_reward.png", _rewards,
           "Mean reward of the sampled tokens at each REINFORCE step: 1 when the sampled "
           "character is of the same kind (lowercase, uppercase, digit, space, other) as the "
           "true next one. The placebo run makes the same number of updates with rewards that "
           "are coin flips, blind to the sampled token: what noise alone does to the policy."),
)


def build(side: str, seed: int = 0) -> NextTokenModel:
    """Tiny untrained model whose loss on ids goes through argmax (wrong) or is the
    cross-entropy of the true next token (fixed)."""
    check_side(side)
    return NextTokenModel(build_model({}, seed), "argmax" if side == "wrong" else "cross_entropy")


# ---------------------------------------------------------------------------------------------
# The deep tier (`lab --deep`): a reward that needs the context.
#
# The quick and full tiers reward the kind of character (lowercase, ...), which the best
# constant answer ("always a lowercase letter") already earns 0.57 of: REINFORCE ended level
# with it. Here the reward is 1 when the sampled character equals the character before the
# current one (at t, answer x[t-1]): it needs the prompt, the best constant answer (the most
# common character, a space in this corpus) earns its frequency, and a policy that reads the
# prompt can earn 1. Through argmax the model cannot learn at all (its gradient is exactly 0);
# REINFORCE's gain is measured beyond the constant answer and beyond the placebo.

DEEP_SETTINGS = dict(block_size=32, n_layer=2, n_head=2, n_embd=32, reinforce_steps=1000,
                     lr=3e-3, entropy=0.05, batch_size=16, eval_windows=64)
DEEP_PUBLISHED = Published(
    "Williams 1992, Simple Statistical Gradient-Following Algorithms for Connectionist "
    "Reinforcement Learning", "the REINFORCE algorithms, with a reinforcement baseline",
    "the update (r - b) grad log p(action) follows the gradient of the expected reward for a "
    "non-differentiable reward; a baseline b leaves its expectation unchanged")


def previous_char_reward(samples: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where the sampled token equals the token one position before the current input
    (x[t-1]); position 0 has none and earns 0."""
    r = np.zeros(samples.shape, dtype=np.float32)
    r[:, 1:] = samples[:, 1:] == x[:, :-1]
    return r


def previous_char_expected(model: GPT, x: np.ndarray) -> np.ndarray:
    """Exact expected reward of the sampling policy at positions 1..T-1, (B, T-1): p(x[t-1])."""
    with no_grad():
        z = model(x)[0].data.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.take_along_axis(p[:, 1:], x[:, :-1, None], -1)[..., 0]   # (B, T-1)


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    cfg = small_config(data.vocab_size, True, **model_sizes(settings))
    xe, _ = get_batch(data.val, cfg.block_size, settings["eval_windows"],
                      np.random.default_rng(seed + 2))
    answers = xe[:, :-1]
    constant = float(np.bincount(answers.ravel()).max() / answers.size)
    x, y = get_batch(data.val, cfg.block_size, 8, np.random.default_rng(seed + 1))
    wrong, _ = _gradient_report(NextTokenModel(GPT(cfg, seed=seed), "argmax"), x, y)
    start = previous_char_expected(GPT(cfg, seed=seed), xe)
    # every gradient through argmax is exactly 0: no update moves the weights, the policy ends
    # where it started
    wrong.update(expected_reward_after=float(start.mean()), expected_reward_before=float(
        start.mean()))
    runs: dict = {}
    for name, placebo in (("fixed", False), ("placebo", True)):
        policy = GPT(cfg, seed=seed)
        rewards = reinforce(policy, data, settings["reinforce_steps"], seed, lr=settings["lr"],
                            batch_size=settings["batch_size"], placebo=placebo,
                            entropy=settings["entropy"], reward=previous_char_reward)
        end = previous_char_expected(policy, xe)
        gain, stderr = reward_gain(start, end)
        runs[name] = {"expected_reward_before": float(start.mean()),
                      "expected_reward_after": float(end.mean()), "reward_gain": gain,
                      "reward_gain_stderr": stderr,
                      "beyond_constant": float(end.mean()) - constant,
                      "rewards": rewards}
    f, p = runs["fixed"], runs["placebo"]
    f["beyond_placebo"] = f["expected_reward_after"] - p["expected_reward_after"]
    series = {"reinforce_reward": f.pop("rewards"), "placebo_reward": p.pop("rewards")}
    return Measured({"wrong": wrong, "fixed": f, "placebo": p}, series,
                    facts={"constant_policy_reward": constant, "eval_windows": len(xe)})


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w, f, p = metrics["wrong"], metrics["fixed"], metrics["placebo"]
    const = context["constant_policy_reward"]
    stuck = bool(w["nonzero_grad_params"] == 0 and w["grad_max_abs"] == 0.0)
    learns = bool(f["beyond_constant"] > REWARD_MARGIN and f["beyond_placebo"] > REWARD_MARGIN
                  and f["reward_gain"] > 3 * f["reward_gain_stderr"])
    kind = evidence(stuck and learns, stuck)
    words = (f"through argmax no learning (0 of {w['parameters']} parameters get gradient); "
             f"REINFORCE {f['expected_reward_after']:.2f} against "
             f"{const:.2f} for the best constant answer")
    return Verdict(kind, words, (
        f"reward 1 for answering the character before the current one: through argmax "
        f"{w['nonzero_grad_params']} of {w['parameters']} parameters get a gradient, so the "
        f"policy stays at {w['expected_reward_after']:.3f}; REINFORCE raises the exact "
        f"expected reward on {context['eval_windows']} held-out windows to "
        f"{f['expected_reward_after']:.3f} (+{f['reward_gain']:.3f} +- "
        f"{f['reward_gain_stderr']:.3f}), {f['beyond_constant']:+.3f} beyond the best "
        f"constant answer ({const:.3f}) and {f['beyond_placebo']:+.3f} beyond the placebo "
        f"({p['expected_reward_after']:.3f}); learning counts when both exceed "
        f"{REWARD_MARGIN}"))


def _draw_deep(r: dict, path: Path) -> Path:
    const = r["facts"]["constant_policy_reward"]

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for key, label in (("reinforce_reward", "REINFORCE"), ("placebo_reward", "placebo")):
            ys = np.asarray(r["series"][key])
            k = max(1, len(ys) // 20)
            ax.plot(np.arange(k - 1, len(ys)), np.convolve(ys, np.ones(k) / k, mode="valid"),
                    lw=1.6, label=f"{label} (moving average of {k})")
        ax.axhline(const, color="grey", ls="--", lw=1, label="best constant answer")
        ax.axhline(r["metrics"]["wrong"]["expected_reward_after"], color="k", ls=":", lw=1,
                   label="through argmax (never moves)")
        label_axes(ax, "step", "reward (answer = the character before)",
                   "a reward that needs the context", loc="center right", published=DEEP_PUBLISHED)

    return figure(path, draw, 7.0, 4.5)


DEEP = Deep(settings=DEEP_SETTINGS, measure=deep_measure, verdict=deep_verdict,
            symptom="expected_reward_after",
            figures=(Figure("m09_deep_context_reward.png", _draw_deep,
                            "Mean reward of the sampled tokens during REINFORCE (1 when the "
                            "sampled character is the one before the current input), against "
                            "the placebo, the best constant answer and the model trained "
                            "through argmax, which never moves."),),
            published=DEEP_PUBLISHED)


MISTAKE = register(Mistake(
    number=9, slug="argmax", title="Gradient through argmax",
    explanation=EXPLANATION,
    wrong={"loss": "error rate of argmax(logits)"},
    fixed={"loss": "cross-entropy of the true next token (teacher forcing); REINFORCE with a "
                   "baseline when only sampled tokens are rewarded"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="nonzero_grad_params",
    figures=FIGURES, build=build, deep=DEEP))
