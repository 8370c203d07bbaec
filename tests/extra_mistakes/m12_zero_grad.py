"""Mistake 12 (test only): forgetting `zero_grad`, so every backward adds to the gradients of the
steps before. One file is all a new mistake needs: settings per tier, a measurement, a verdict
and a figure, registered at import."""
from __future__ import annotations

from pathlib import Path

from tinygrad_gpt.lab.base import MECHANISM, NOT_SEEN, Figure, Measured, Mistake, Verdict, register
from tinygrad_gpt.lab.common import LabData, build_model, fixed_batch
from tinygrad_gpt.lab.plotting import figure
from tinygrad_gpt.model.stats import block_grad_norms

TIERS = {"quick": dict(backwards=3), "full": dict(backwards=5)}


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    """The gradient norm of each block after `backwards` backward passes on one batch, with and
    without zero_grad before each."""
    model = build_model({}, seed, vocab_size=data.vocab_size, n_layer=2, block_size=16)
    x, y = fixed_batch(data, 16, 4, seed)
    metrics = {}
    for side, zero in (("wrong", False), ("fixed", True)):
        model.zero_grad()
        for _ in range(settings["backwards"]):
            if zero:
                model.zero_grad()
            model(x, y)[1].backward()
        metrics[side] = {"zero_grad": zero, "grad_by_block": block_grad_norms(model)}
    for m in metrics.values():
        m["grad_over_one_step"] = m["grad_by_block"][0] / metrics["fixed"]["grad_by_block"][0]
    return Measured(metrics, {"grad_by_block": {k: m["grad_by_block"] for k, m in
                                                metrics.items()}})


def verdict(metrics: dict, context: dict) -> Verdict:
    w = metrics["wrong"]["grad_over_one_step"]
    kind = MECHANISM if abs(w - context["backwards"]) < 1e-3 else NOT_SEEN
    return Verdict(kind, f"gradient {w:.0f}x too large after {context['backwards']} backward "
                         f"passes without zero_grad",
                   f"without zero_grad the gradient after {context['backwards']} backward "
                   f"passes is {w:.3f}x the gradient of one")


def _bars(r: dict, path: Path) -> Path:
    def draw(fig) -> None:
        ax = fig.add_subplot()
        for side, norms in r["series"]["grad_by_block"].items():
            ax.plot(norms, marker="o", label=side)
        ax.legend()
    return figure(path, draw, 4.0, 3.0)


MISTAKE = register(Mistake(
    number=12, slug="zero-grad", title="Forgetting zero_grad",
    explanation="Gradients accumulate: backward adds to .grad, it does not replace it.",
    wrong={"zero_grad": "never"}, fixed={"zero_grad": "before every backward"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="grad_over_one_step",
    figures=(Figure("m12_grad_by_block.png", _bars,
                    lambda r: f"Gradient by block after {r['settings']['backwards']} passes."),)))
