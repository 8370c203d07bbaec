"""What `diagnose()` returns: one `ProbeResult` per probe (pass, fail or skip, the measured
number, a one-line fix) gathered in a `Report` that prints as a table, converts to a dict and
adds itself as a section (text, metrics table, pictures) to the viz package's HTML report."""
from __future__ import annotations

import math
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class ProbeResult:
    key: str                         # short identifier, e.g. "causality"
    title: str                       # what the probe checks, in words
    mistakes: tuple[int, ...]        # the lab's mistake numbers this probe can reveal
    status: str                      # "pass", "fail" or "skip"
    value: float | None = None       # the headline number
    measured: str = ""               # the headline number (and context) in words
    threshold: str = ""              # what passing means
    fix: str = ""                    # one line: what to change when it fails
    reason: str = ""                 # why it was skipped
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def skipped(self) -> bool:
        return self.status == SKIP


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v or math.isinf(v):
            return str(v)
        return f"{v:.3g}"
    return str(v)


@dataclass
class Report:
    """The findings of one `diagnose()` run, in probe order."""

    model: str
    probes: list[ProbeResult] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)   # vocab, block size, parameter count...

    def __getitem__(self, key: str) -> ProbeResult:
        for p in self.probes:
            if p.key == key:
                return p
        raise KeyError(f"Report: no probe {key!r}; probes are {[p.key for p in self.probes]}")

    def __iter__(self):
        return iter(self.probes)

    @property
    def failures(self) -> list[ProbeResult]:
        return [p for p in self.probes if p.failed]

    @property
    def skipped(self) -> list[ProbeResult]:
        return [p for p in self.probes if p.skipped]

    @property
    def ok(self) -> bool:
        """True when no probe failed (skipped probes do not count against the model)."""
        return not self.failures

    @property
    def flagged(self) -> set[int]:
        """Mistake numbers named by the failing probes."""
        return {m for p in self.failures for m in p.mistakes}

    def table(self, width: int = 100) -> str:
        """A plain-text table: probe, mistakes, status, measured, and the fix (or skip reason)
        under failing and skipped rows, wrapped to `width` columns."""
        rows = [(p.key, ",".join(map(str, p.mistakes)) or "-", p.status.upper(),
                 p.measured or "-") for p in self.probes]
        w0 = max([len("probe")] + [len(r[0]) for r in rows])
        w1 = max([len("mistake")] + [len(r[1]) for r in rows])
        head = f"{'probe':<{w0}}  {'mistake':<{w1}}  {'status':<6}  measured"
        lines = [f"diagnose: {self.model}"]
        if "weights" in self.info:
            lines += textwrap.wrap(f"weights: {self.info['weights']} "
                                   f"({self.info.get('weights_evidence', '')})", width)
        lines += [head, "-" * min(width, max(len(head), 60))]
        room = max(20, width - (w0 + w1 + 12))
        for (key, mis, status, measured), p in zip(rows, self.probes):
            pad = " " * (w0 + w1 + 12)
            body = textwrap.wrap(measured, room) or [""]
            note = p.fix if p.failed else p.reason if p.skipped else ""
            if note:
                body += textwrap.wrap(("fix: " if p.failed else "why: ") + note, room)
            lines.append(f"{key:<{w0}}  {mis:<{w1}}  {status:<6}  {body[0]}")
            lines += [pad + b for b in body[1:]]
        n_fail, n_skip = len(self.failures), len(self.skipped)
        n_pass = len(self.probes) - n_fail - n_skip
        lines.append(f"{n_pass} passed, {n_fail} failed, {n_skip} skipped"
                     + (f"; flags mistakes {sorted(self.flagged)}" if n_fail else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "info": dict(self.info), "ok": self.ok,
                "flagged": sorted(self.flagged), "probes": [asdict(p) for p in self.probes]}

    def metrics(self) -> list[dict[str, Any]]:
        """One row per probe, for `viz.Report` metrics tables."""
        return [{"probe": p.key, "checks": p.title, "mistakes": ",".join(map(str, p.mistakes)),
                 "status": p.status, "measured": p.measured,
                 "fix or reason": p.fix if p.failed else p.reason if p.skipped else ""}
                for p in self.probes]

    def gradient_series(self) -> dict[str, float]:
        """Gradient norm per layer, input to output (empty when that probe was skipped)."""
        try:
            probe = self["gradient_flow"]
        except KeyError:
            return {}
        return dict(probe.details.get("layer_norms", {}))

    def add_to(self, html_report: Any, title: str | None = None) -> Any:
        """Add a section to a `tinygrad_gpt.viz.Report`: a summary, the probe table, the
        model's facts and, when matplotlib is installed, gradient norm by depth."""
        sec = html_report.section(title or f"diagnose: {self.model}")
        verdict = ("Every probe passed." if self.ok else
                   f"{len(self.failures)} probe(s) failed, pointing at mistake(s) "
                   f"{', '.join(map(str, sorted(self.flagged)))}: "
                   + "; ".join(f"`{p.key}`: {p.fix}" for p in self.failures))
        trained = self.info.get("weights") == "trained"
        sec.text(f"`diagnose()` probed `{self.model}` with crafted inputs and one backward "
                 "pass, without training it"
                 + ("; its weights are trained, so the initialisation probes ran on a freshly "
                    "initialised copy" if trained else "") + f". {verdict}")
        sec.metrics(self.metrics(), caption="probes")
        if self.info:
            sec.metrics({k: _fmt(v) for k, v in self.info.items()}, caption="model")
        series = self.gradient_series()
        if series:
            try:
                from ..viz import plot_gradient_flow
                fig = plot_gradient_flow({self.model: series},
                                         title="gradient norm by depth at init")
            except ImportError:
                sec.text("(install matplotlib to see gradient norm by depth)")
            else:
                sec.figure(fig, caption="L2 norm of each layer's parameter gradients for one "
                                        "batch at initialisation; a flat line is healthy, a "
                                        "slope over orders of magnitude is vanishing or "
                                        "exploding gradient.")
        return sec


