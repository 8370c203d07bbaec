"""What every mistake module provides: a `Mistake` entry (title, explanation, wrong and fixed
settings, `run`) and the `Result` its run returns (metrics for both sides, pictures, verdict)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class Result:
    slug: str
    metrics: dict[str, dict[str, Any]]   # {"wrong": {...}, "fixed": {...}} (and other sides)
    reproduced: bool                     # computed from the metrics, never hard-coded
    symptom: str                         # the metric that shows the mistake, e.g. "grad_span"
    verdict: str                         # one sentence: what was measured and what it means
    pictures: list[str] = field(default_factory=list)   # files written under out_dir
    series: dict[str, Any] = field(default_factory=dict)  # curves for plots (lists of floats)
    notes: str = ""
    captions: dict[str, str] = field(default_factory=dict)  # picture -> caption in the report

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """The verdict, every metric by side and the pictures, as plain text."""
        lines = ["", self.verdict, f"reproduced: {self.reproduced}"]
        for side, metrics in self.metrics.items():
            lines.append(f"  {side}:")
            for key, value in metrics.items():
                shown = f"{value:.4g}" if isinstance(value, float) else f"{value}"
                lines.append(f"    {key:<24} {shown}")
        lines += [f"  picture: {p}" for p in self.pictures]
        return "\n".join(lines)


@dataclass
class Mistake:
    number: int
    slug: str
    title: str
    explanation: str                 # in our own words: what goes wrong and why
    wrong: dict[str, Any]            # GPTConfig overrides (or a description) for the mistake
    fixed: dict[str, Any]            # ... and for the fix
    run: Callable[..., Result]       # run(quick=False, seed=0, out_dir=None, corpus=None)
    # build(side, seed) -> a tiny untrained model for side "wrong" or "fixed", whose call takes
    # ids (B, T) and returns (logits, loss); diagnose() is checked against these
    build: Callable[[str, int], Any] | None = None


MISTAKES: dict = {}


def register(mistake: Mistake) -> Mistake:
    """Add to the registry under its number (1..11) and its slug."""
    if mistake.number in MISTAKES or mistake.slug in MISTAKES:
        raise ValueError(f"lab: mistake {mistake.number} / {mistake.slug!r} registered twice")
    MISTAKES[mistake.number] = mistake
    MISTAKES[mistake.slug] = mistake
    return mistake


def out_path(out_dir: str | Path | None, name: str) -> Path | None:
    if out_dir is None:
        return None
    p = Path(out_dir)
    p.mkdir(parents=True, exist_ok=True)
    return p / name
