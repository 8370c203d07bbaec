"""Statistics over seeds: `--seeds` parsing, a mistake's effect per seed (wrong minus fixed, or
wrong over fixed in log space), its mean, standard deviation and 95% t interval, "k of n seeds
reproduced", and the verdict over seeds (the rule is in the lab README)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

# How a mistake's symptom is compared: "difference" (wrong - fixed, no effect = 0), "ratio"
# (wrong / fixed, averaged as log ratios, no effect = 1) or "" (not a number: only the count).
EFFECT_KINDS = ("difference", "ratio", "")
AGREEMENT = 0.8          # at least this share of the seeds must reproduce on their own
CONFIDENCE = 0.95


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '0,3,7' -> [0, 3, 7]; both mix ('0-2,9'). Seeds are whole
    numbers >= 0, each given once; the order given is kept. Raises ValueError naming the part."""
    seeds: list[int] = []
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError("--seeds: empty; give seeds like 0-4 or 0,3,7")
    for part in parts:
        lo, dash, hi = part.partition("-")
        if not (lo.strip().isdigit() and (not dash or hi.strip().isdigit())):
            raise ValueError(f"--seeds {text!r}: {part!r} is not a seed (a whole number >= 0) "
                             f"or a range like 0-4")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise ValueError(f"--seeds {text!r}: range {part!r} runs backwards; write {b}-{a}")
        for s in range(a, b + 1):
            if s in seeds:
                raise ValueError(f"--seeds {text!r}: seed {s} is given twice")
            seeds.append(s)
    return seeds


def _number(v: Any) -> float | None:
    """A metric as a float, or None when it is not a number (a string verdict, a list, a bool).
    JSON's "nan"/"inf" strings (results.json after --resume) count as the numbers they name."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        return float(v) if v in ("nan", "inf", "-inf") else None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def effect(kind: str, wrong: Any, fixed: Any) -> float | None:
    """One seed's effect: wrong - fixed, or ln(wrong / fixed) for a ratio (both sides must be
    positive); None when it is not a finite number."""
    if kind not in EFFECT_KINDS:
        raise ValueError(f"effect kind {kind!r}: choose from {EFFECT_KINDS}")
    w, f = _number(wrong), _number(fixed)
    if not kind or w is None or f is None:
        return None
    if kind == "ratio":
        if w <= 0 or f <= 0:
            return None
        e = math.log(w) - math.log(f)
    else:
        e = w - f
    return e if math.isfinite(e) else None


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on the CDF, to about 1e-12)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile: p={p} must be in (0, 1) and df={df} > 0")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_interval(values: Sequence[float],
                  confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean, sample standard deviation, low, high): the t interval with n-1 degrees of
    freedom. Needs at least two values."""
    n = len(values)
    if n < 2:
        raise ValueError(f"mean_interval: needs at least 2 values, got {n}")
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


@dataclass
class OverSeeds:
    """A symptom over n seeds. For a ratio, `mean`, `low` and `high` are ratios (the geometric
    mean and the interval, taken back from log space) and `sd` is that of ln(wrong / fixed)."""
    kind: str                    # "difference", "ratio" or ""
    n: int                       # seeds run
    k: int                       # seeds whose own verdict reproduced the mistake
    measured: int                # seeds with a numeric effect
    mean: float | None = None
    sd: float | None = None
    low: float | None = None
    high: float | None = None
    reproduced: bool = False
    why: str = ""                # which part of the rule decided

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def effect_name(self) -> str:
        return {"difference": "wrong - fixed", "ratio": "wrong / fixed"}.get(self.kind, "")


def needed(n: int) -> int:
    """Seeds that must reproduce on their own: at least AGREEMENT of n."""
    return math.ceil(AGREEMENT * n - 1e-9)


def over_seeds(kind: str, pairs: Sequence[tuple[Any, Any]],
               reproduced: Sequence[bool]) -> OverSeeds:
    """The verdict over seeds from each seed's (wrong, fixed) symptom values and own verdict.
    One seed: that seed's verdict. Several: at least 80% of the seeds reproduce on their own,
    and, when the symptom is a number, the 95% interval of the effect excludes no effect."""
    if len(pairs) != len(reproduced) or not pairs:
        raise ValueError(f"over_seeds: {len(pairs)} symptom pairs for {len(reproduced)} "
                         f"verdicts; need the same number, at least one")
    n, k = len(pairs), sum(bool(r) for r in reproduced)
    effects = [e for e in (effect(kind, w, f) for w, f in pairs) if e is not None]
    out = OverSeeds(kind, n, k, len(effects))
    if kind and effects:
        out.mean = math.fsum(effects) / len(effects)
    if kind and len(effects) >= 2:
        out.mean, out.sd, out.low, out.high = mean_interval(effects)
    excludes = out.low is not None and (out.low > 0 or out.high < 0)
    if kind == "ratio":
        out.mean, out.low, out.high = (None if v is None else math.exp(v)
                                       for v in (out.mean, out.low, out.high))
    enough = k >= needed(n)
    if n == 1:
        out.reproduced, out.why = k == 1, "one seed: its own verdict"
    elif not enough:
        out.why = f"only {k} of {n} seeds reproduced; the rule needs {needed(n)}"
    elif not kind:
        out.reproduced, out.why = True, f"{k} of {n} seeds reproduced (not a number: count only)"
    elif out.low is None:
        out.why = f"{len(effects)} seed(s) gave a number; an interval needs 2"
    elif not excludes:
        out.why = "the 95% interval includes no effect"
    else:
        out.reproduced = True
        out.why = f"{k} of {n} seeds reproduced and the 95% interval excludes no effect"
    return out


__all__ = ["parse_seeds", "effect", "t_cdf", "t_quantile", "mean_interval", "OverSeeds",
           "over_seeds", "needed", "EFFECT_KINDS", "AGREEMENT", "CONFIDENCE"]
