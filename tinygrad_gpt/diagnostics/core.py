"""`diagnose(model)`: run every probe on a model built on the engine, without training it, and
put its parameters, gradients and training mode back exactly as they were. Probes that read
initialisation run on a freshly initialised copy when the model's weights are trained."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import probes
from .adapter import ModelAdapter
from .report import SKIP, ProbeResult, Report
from .weights import TRAINED, WeightsState, weights_state

# probes whose thresholds hold at initialisation only (first loss vs ln V, gradient span)
INIT_PROBES = (probes.gradient_flow, probes.final_norm)


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


def _init_context(ws: WeightsState, ctx: probes.Context, seed: int) -> probes.Context | None:
    """A context on the fresh copy, its graph built; None when there is no copy."""
    if ws.fresh is None:
        return None
    ad = ModelAdapter(ws.fresh, ctx.adapter.vocab_size, ctx.adapter.block_size)
    rng = np.random.default_rng(seed)          # its own stream: the others' stay as they were
    ad.discover(rng)
    if callable(getattr(ws.fresh, "eval", None)):
        ws.fresh.eval()
    init = probes.Context(ad, rng, seed, ctx.T, tokenizer=ctx.tokenizer)
    probes.build_graph(init)
    return init


def _run_init_probe(fn: Any, init: probes.Context | None, ws: WeightsState) -> ProbeResult:
    if init is None:
        return ProbeResult(fn.__name__, fn.__name__.replace("_", " "),
                           probes.MISTAKES.get(fn.__name__, ()), SKIP,
                           reason=f"the weights are trained ({ws.why}) and no freshly "
                                  "initialised copy could be built; this probe reads "
                                  "initialisation")
    result = _run(fn, init)
    result.measured = ("on a freshly initialised copy (these weights are trained): "
                       + result.measured)
    return result


def diagnose(model: Any, vocab_size: int | None = None, block_size: int | None = None,
             seed: int = 0, tokenizer: Any = None, text: str | None = None) -> Report:
    """Probe `model` (ids (B, T) -> logits (B, T, V) or (logits, loss)) for the classic
    transformer mistakes and return a `Report` (print it for the table; `report.flagged` is
    the set of mistake numbers found). Deterministic for a seed; never trains; restores the
    model's parameters, gradients and training mode. `vocab_size` and `block_size` default to
    the model's config (else they are found by calling it); `tokenizer` (default:
    `model.tokenizer` if it has one) is checked for text it cannot read: `text` (e.g. the
    training corpus) when given, else a set of probe characters. When the weights are trained
    (see `weights.weights_state`), the initialisation probes run on a freshly initialised copy
    of the same class and config, and say so."""
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
        ws = weights_state(model, ad.params, seed)
        t = 16 if ad.block_size is None else max(2, min(16, int(ad.block_size)))
        ctx = probes.Context(ad, rng, seed, t,
                             tokenizer=tokenizer or getattr(model, "tokenizer", None),
                             text=text)
        for fn in probes.BEHAVIOUR:
            report.probes.append(_run(fn, ctx))
        init: probes.Context | None = ctx
        try:
            probes.build_graph(ctx)
            init = _init_context(ws, ctx, seed) if ws.state == TRAINED else ctx
        except Exception as e:  # noqa: BLE001 - reported as skipped probes
            report.probes += [_skipped(fn, e) for fn in probes.STRUCTURE]
        else:
            report.probes += [_run(fn, ctx) if fn not in INIT_PROBES or init is ctx
                              else _run_init_probe(fn, init, ws) for fn in probes.STRUCTURE]
        report.info = {"vocab_size": ad.vocab_size, "block_size": ad.block_size,
                       "parameters": int(sum(p.size for _, p in ad.params)),
                       "parameter_tensors": len(ad.params),
                       "takes_attention_mask": bool(ad.takes_mask),
                       "has_generate": ad.generate_fn is not None,
                       "init_loss": (init or ctx).loss, "seed": seed, "weights": ws.state,
                       "weights_evidence": ws.why}
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
