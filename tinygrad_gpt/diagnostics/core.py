"""`diagnose(model)`: run every probe on a model built on the engine, without training it, and
put its parameters, gradients and training mode back exactly as they were."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import probes
from .adapter import ModelAdapter
from .report import SKIP, ProbeResult, Report


def _describe(model: Any) -> str:
    name = type(model).__name__
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "__dataclass_fields__"):
        return name
    from dataclasses import fields
    changed = [f"{f.name}={getattr(config, f.name)!r}" for f in fields(config)
               if getattr(config, f.name) != f.default]
    return f"{name}({', '.join(changed)})" if changed else name


def _skipped(fn: Any, e: Exception) -> ProbeResult:
    key = fn.__name__
    if isinstance(e, probes.Unsupported):
        reason = str(e)
    else:
        first = str(e).splitlines()[0][:160] if str(e) else ""
        reason = f"the probe's call to the model raised {type(e).__name__}: {first}"
    return ProbeResult(key, key.replace("_", " "), probes.MISTAKES.get(key, ()), SKIP,
                       reason=reason)


def diagnose(model: Any, vocab_size: int | None = None, block_size: int | None = None,
             seed: int = 0, tokenizer: Any = None) -> Report:
    """Probe `model` (ids (B, T) -> logits (B, T, V) or (logits, loss)) for the classic
    transformer mistakes and return a `Report` (print it for the table; `report.flagged` is
    the set of mistake numbers found). Deterministic for a seed; never trains; restores the
    model's parameters, gradients and training mode. `vocab_size` and `block_size` default to
    the model's config (else they are found by calling it); `tokenizer` (default:
    `model.tokenizer` if it has one) is checked for text it cannot read."""
    start = time.perf_counter()
    ad = ModelAdapter(model, vocab_size, block_size)
    rng = np.random.default_rng(seed)
    report = Report(_describe(model))
    ad.save_modes()
    try:
        try:
            ad.discover(rng)
        except Exception as e:  # noqa: BLE001 - nothing can be probed: say why, plainly
            raise ValueError(f"diagnose: calling {type(model).__name__} on token ids of shape "
                             f"(B, T) failed with {type(e).__name__}: {e}") from e
        ad.snapshot()
        t = 16 if ad.block_size is None else max(2, min(16, int(ad.block_size)))
        ctx = probes.Context(ad, rng, seed, t,
                             tokenizer=tokenizer or getattr(model, "tokenizer", None))
        for fn in probes.BEHAVIOUR:
            report.probes.append(_run(fn, ctx))
        try:
            probes.build_graph(ctx)
        except Exception as e:  # noqa: BLE001 - reported as skipped probes
            report.probes += [_skipped(fn, e) for fn in probes.STRUCTURE]
        else:
            report.probes += [_run(fn, ctx) for fn in probes.STRUCTURE]
        report.info = {"vocab_size": ad.vocab_size, "block_size": ad.block_size,
                       "parameters": int(sum(p.size for _, p in ad.params)),
                       "parameter_tensors": len(ad.params),
                       "takes_attention_mask": bool(ad.takes_mask),
                       "has_generate": ad.generate_fn is not None,
                       "init_loss": ctx.loss, "seed": seed}
    finally:
        ad.restore()
    report.info["seconds"] = round(time.perf_counter() - start, 3)
    return report


def _run(fn: Any, ctx: probes.Context) -> ProbeResult:
    state = ctx.rng.bit_generator.state
    try:
        return fn(ctx)
    except Exception as e:  # noqa: BLE001 - a probe the model cannot support is skipped
        return _skipped(fn, e)
    finally:  # every probe sees the same random stream whatever the others did
        ctx.rng.bit_generator.state = state
        ctx.rng.integers(0, 2 ** 31)
