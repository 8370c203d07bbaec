"""What a mistake is: data (number, slug, title, explanation, wrong and fixed settings, settings
per tier, an optional deep experiment beside a published result) plus functions (measure,
verdict, figures); what a verdict is (a kind of evidence, the symptom in words, a sentence).
`register` adds a mistake to `MISTAKES`; `discover` imports every `mNN_*` module of a package."""
from __future__ import annotations

import copy
import importlib
import pkgutil
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

TIERS = ("quick", "full", "deep")   # "deep" runs `Mistake.deep`, where a mistake has one
BASIC_TIERS = ("quick", "full")     # every mistake has settings for these

# The kind of evidence a result is, computed from its metrics by the mistake's verdict:
HARM = "harm reproduced"          # the symptom the mistake names: does not train, worse loss,
#                                   a crash, wrong output, no learning
MECHANISM = "mechanism shown"     # the cause without the harm: gradient imbalance at init, a
#                                   parameter count, a drift
NOT_SEEN = "not seen at this scale"   # neither showed, after an honest attempt
EVIDENCE = (HARM, MECHANISM, NOT_SEEN)
MODULE_NAME = re.compile(r"m\d\d_\w+")   # m01_norm_placement, m12_..., discovered in order


@dataclass
class Measured:
    """What an experiment measured, as plain data (numbers, strings, lists; no arrays, models
    or graphs), so that it can cross a process boundary and be written as JSON."""
    metrics: dict[str, dict[str, Any]]   # {"wrong": {...}, "fixed": {...}} (and other sides)
    series: dict[str, Any] = field(default_factory=dict)    # curves (lists of floats)
    figures: dict[str, Any] = field(default_factory=dict)   # what the figures draw, by name
    notes: str = ""                                         # measured caveats for the report
    # facts the verdict and figures need beside the metrics (the vocabulary size, ...)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """One picture: `draw(result, path)` writes it from a task's result (the dict `run_task`
    returns) and gives back the file it wrote (None: nothing to draw). `name` is the file under
    the report folder; `caption` may depend on the result."""
    name: str
    draw: Callable[[dict, Path], str | Path | None]
    caption: str | Callable[[dict], str] = ""

    def caption_for(self, result: dict) -> str:
        return self.caption(result) if callable(self.caption) else self.caption


@dataclass
class Verdict:
    """What an experiment showed: `kind` (one of EVIDENCE), `symptom` in plain words with its
    number ("gradient spread across blocks at init, 23x"; never a metric name) and `sentence`,
    the longer verdict with the numbers of both sides."""
    kind: str
    symptom: str
    sentence: str

    def __post_init__(self) -> None:
        if self.kind not in EVIDENCE:
            raise ValueError(f"Verdict: kind must be one of {EVIDENCE}, got {self.kind!r}")

    @property
    def reproduced(self) -> bool:
        """Something was shown (harm or mechanism): what `reproduced` meant before kinds."""
        return self.kind != NOT_SEEN


def as_verdict(value: Any, where: str = "verdict") -> Verdict:
    """A verdict function's return value, checked: a `Verdict`, or a clear TypeError."""
    if isinstance(value, Verdict):
        return value
    raise TypeError(f"{where} must return a Verdict(kind, symptom, sentence), got "
                    f"{type(value).__name__}")


@dataclass(frozen=True)
class Published:
    """The published result a deep experiment is set beside: the paper, its figure (or
    section), and the claim (direction and rough size the paper reports)."""
    paper: str
    figure: str
    claim: str


@dataclass
class Deep:
    """A mistake's deep tier: an experiment aimed at the harm itself (not only the mechanism),
    run by `tinygrad-gpt lab --deep` through the same tasks as the other tiers. `settings` go
    to `measure(settings, seed, data) -> Measured`; `verdict(metrics, context) -> Verdict`;
    `symptom` is the metric of the summary table; `published` is shown beside our result."""
    settings: dict
    measure: Callable[..., Measured]
    verdict: Callable[[dict, dict], Verdict]
    symptom: str
    figures: tuple[Figure, ...] = ()
    published: Published | None = None


@dataclass
class Mistake:
    number: int
    slug: str
    title: str
    explanation: str                 # in our own words: what goes wrong and why
    wrong: dict[str, Any]            # GPTConfig overrides (or a description) for the mistake
    fixed: dict[str, Any]            # ... and for the fix
    tiers: dict[str, dict[str, Any]]  # {"quick": settings, "full": settings} for `measure`
    # measure(settings, seed, data) -> Measured: the experiment, pictures left out
    measure: Callable[..., Measured]
    # verdict(metrics, context) -> Verdict (kind, symptom in words, sentence), where context is
    # the settings plus the Measured facts; the kind is computed from the metrics
    verdict: Callable[[dict, dict], Verdict]
    symptom: str                     # the metric of the summary table, on both sides
    figures: tuple[Figure, ...] = ()
    notes: str = ""                  # fixed notes for the report (measured notes: Measured)
    # build(side, seed) -> a tiny untrained model for side "wrong" or "fixed", whose call takes
    # ids (B, T) and returns (logits, loss); diagnose() is checked against these
    build: Callable[[str, int], Any] | None = None
    module: str = ""                 # the module that defines it (set by `register`)
    deep: Deep | None = None         # the deep tier's experiment (`lab --deep`), if any

    def has_tier(self, tier: str) -> bool:
        return tier in self.tiers or (tier == "deep" and self.deep is not None)

    def settings(self, tier: str) -> dict[str, Any]:
        """A copy of the experiment's settings for `tier` ("quick", "full" or "deep")."""
        if tier == "deep" and self.deep is not None:
            return copy.deepcopy(self.deep.settings)
        if tier not in self.tiers:
            have = sorted(self.tiers) + (["deep"] if self.deep is not None else [])
            raise ValueError(f"lab: mistake {self.slug!r} has no tier {tier!r}; "
                             f"choose from {have}")
        return copy.deepcopy(self.tiers[tier])

    def part(self, tier: str) -> tuple[Callable[..., Measured], Callable[[dict, dict], Verdict],
                                       str, tuple[Figure, ...]]:
        """(measure, verdict, symptom metric, figures) of the experiment for `tier`."""
        if tier == "deep":
            if self.deep is None:
                raise ValueError(f"lab: mistake {self.slug!r} has no deep tier")
            d = self.deep
            return d.measure, d.verdict, d.symptom, d.figures
        return self.measure, self.verdict, self.symptom, self.figures


def fmt(v: Any) -> str:
    """A metric value for a table cell: 4 significant digits, lists shortened."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    if isinstance(v, (list, tuple)):
        items = [fmt(a) for a in v]
        return "[" + ", ".join(items if len(items) <= 8 else items[:3] + ["..."] + items[-3:]) \
            + "]"
    return str(v)


@dataclass
class Result:
    """One experiment's outcome as the caller sees it (built from `run_task`'s dict)."""
    slug: str
    metrics: dict[str, dict[str, Any]]
    reproduced: bool                     # kind != NOT_SEEN (what it meant before kinds)
    symptom: str                         # the metric that shows the mistake, e.g. "grad_span"
    verdict: str                         # one sentence: what was measured and what it means
    pictures: list[str] = field(default_factory=list)   # files written under out_dir
    series: dict[str, Any] = field(default_factory=dict)  # curves for plots (lists of floats)
    notes: str = ""
    captions: dict[str, str] = field(default_factory=dict)  # picture -> caption in the report
    error: str = ""                      # "Type: message" when the experiment raised
    elapsed_s: float = 0.0
    kind: str = ""                       # one of EVIDENCE, computed by the verdict ("" failed)
    symptom_words: str = ""              # the symptom in plain words with its number
    tier: str = ""                       # "quick", "full" or "deep"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """The verdict, every metric by side and the pictures, as plain text."""
        lines = ["", self.verdict, f"evidence: {self.kind or 'none (failed)'}",
                 f"symptom: {self.symptom_words}"]
        for side, metrics in self.metrics.items():
            lines.append(f"  {side}:")
            lines += [f"    {key:<24} {fmt(value)}" for key, value in metrics.items()]
        lines += [f"  picture: {p}" for p in self.pictures]
        return "\n".join(lines)


MISTAKES: dict = {}


def register(mistake: Mistake) -> Mistake:
    """Add to the registry under its number and its slug."""
    if mistake.number in MISTAKES or mistake.slug in MISTAKES:
        raise ValueError(f"lab: mistake {mistake.number} / {mistake.slug!r} registered twice")
    missing = [t for t in BASIC_TIERS if t not in mistake.tiers]
    if missing:
        raise ValueError(f"lab: mistake {mistake.slug!r} has no settings for {missing}")
    if not mistake.module:
        mistake.module = getattr(mistake.measure, "__module__", "") or ""
    MISTAKES[mistake.number] = mistake
    MISTAKES[mistake.slug] = mistake
    return mistake


def unregister(slug: str) -> None:
    """Remove a mistake (a test's extra one) from the registry."""
    mistake = MISTAKES.pop(slug)
    MISTAKES.pop(mistake.number, None)


def discover(package: str) -> list[str]:
    """Import every module named like `m01_...` in `package`, in name order, so that each one
    registers its mistake; returns the module names imported."""
    pkg = importlib.import_module(package)
    names = sorted(info.name for info in pkgutil.iter_modules(pkg.__path__)
                   if MODULE_NAME.fullmatch(info.name))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


def out_path(out_dir: str | Path | None, name: str) -> Path | None:
    if out_dir is None:
        return None
    p = Path(out_dir)
    p.mkdir(parents=True, exist_ok=True)
    return p / name
