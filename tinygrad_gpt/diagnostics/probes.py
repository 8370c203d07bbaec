"""The probes. Behavioural ones call the model with crafted inputs (causality, batch
independence, padding, cache, positions); structural ones read one forward/backward graph at
initialisation (gradient flow by depth, skip paths, norm placement, the head's input, FFN width,
tied embeddings, vocabulary, parameters that get no gradient). Each returns a `ProbeResult`."""
from __future__ import annotations

import copy
import math
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functional as F
from ..engine import Tensor
from . import structure as st
from .adapter import ModelAdapter
from .report import FAIL, PASS, SKIP, ProbeResult

# float32 forward passes that should be equal differ by ~1e-7 of the logits' scale
REL_TOL = 1e-4
GRAD_SPAN = 100.0        # max/min layer gradient norm at init before we call it vanishing
FFN_MIN_RATIO = 2.0      # d_ff / d_model below this is too narrow (the standard is 4)
LOSS_MARGIN = 0.5        # nats above ln(V) at init: logits too large (overconfident init)
MIN_VOCAB = 64           # fewer ids than this cannot give even printable ASCII its own id
MAX_EMBED_SHARE = 0.5    # embeddings above half the parameters: vocab too big for the model


class Unsupported(Exception):
    """Raised by a probe's setup when the model cannot support it; the message is the reason."""


# the lab's mistake numbers each probe can reveal (shown even when a probe is skipped)
MISTAKES = {"causality": (), "batch_independence": (5,), "padding_invariance": (8,),
            "kv_cache": (11,), "position_range": (7,), "gradient_flow": (2,),
            "norm_placement": (1,), "final_norm": (6,), "ffn_width": (3,),
            "tied_embeddings": (4,), "vocabulary": (10,), "dead_parameters": (9,)}


@dataclass
class Context:
    """Shared between probes: the adapter, the random inputs and one graph at init."""
    adapter: ModelAdapter
    rng: np.random.Generator
    seed: int
    T: int
    names: dict[int, str] = field(default_factory=dict)        # id(param) -> name
    anatomy: st.Anatomy | None = None
    loss: float = float("nan")
    logits_std: float = float("nan")
    grads: dict[int, np.ndarray | None] = field(default_factory=dict)
    loss_nodes: list = field(default_factory=list)
    loss_requires_grad: bool = True
    tokenizer: Any = None
    text: str | None = None          # what the tokenizer must read (e.g. the training corpus)

    @property
    def V(self) -> int:
        return int(self.adapter.vocab_size)

    def ids(self, b: int, t: int) -> np.ndarray:
        return self.rng.integers(0, self.V, (b, t)).astype(np.int64)


def _result(key: str, title: str, mistakes: tuple, status: str, **kw: Any) -> ProbeResult:
    return ProbeResult(key, title, mistakes, status, **kw)


def _checked(key: str, title: str, mistakes: tuple, fails: list[str], **kw: Any) -> ProbeResult:
    """FAIL with every failed check's fix joined, or PASS when `fails` is empty."""
    return _result(key, title, mistakes, FAIL if fails else PASS, fix="; ".join(fails), **kw)


def _rel(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> float:
    """max |a - b| relative to the largest logit among a, b and the reference."""
    if a.shape != b.shape:
        return float("inf")
    d = np.abs(a - b)
    if not np.isfinite(d).all():
        return float("inf")
    scale = max(float(np.abs(x).max()) if x.size else 0.0 for x in (a, b, ref))
    return float(d.max() / max(scale, 1e-12)) if d.size else 0.0


# ---------------------------------------------------------------------------- behaviour

def causality(ctx: Context) -> ProbeResult:
    key, title = "causality", "changing future tokens leaves earlier logits unchanged"
    t = ctx.T
    t0 = t // 2
    ids = ctx.ids(2, t)
    other = ids.copy()
    other[:, t0:] = (ids[:, t0:] + 1 + ctx.rng.integers(0, ctx.V - 1, (2, t - t0))) % ctx.V
    a, b = ctx.adapter.logits(ids), ctx.adapter.logits(other)
    past = _rel(a[:, :t0], b[:, :t0], a)
    leak = [int(i) for i in range(t0) if _rel(a[:, i], b[:, i], a) > REL_TOL]
    status = FAIL if past > REL_TOL else PASS
    measured = (f"positions 0..{t0 - 1} move by {past:.2g} (relative) when tokens {t0}.."
                f"{t - 1} change")
    if leak:
        measured += f"; leaking positions {leak[:6]}"
    return _result(key, title, (), status, value=past, measured=measured,
                   threshold=f"<= {REL_TOL:g}",
                   fix="mask attention scores with a lower-triangular (causal) mask before the "
                       "softmax, so position t sees only tokens 0..t",
                   details={"leaking_positions": leak})


def batch_independence(ctx: Context) -> ProbeResult:
    key, title = "batch_independence", "an example's logits do not depend on its batch-mates"
    x = ctx.ids(1, ctx.T)
    batch1 = np.concatenate([x, ctx.ids(3, ctx.T)])
    batch2 = np.concatenate([x, ctx.ids(3, ctx.T)])
    alone = ctx.adapter.logits(x)
    in1 = ctx.adapter.logits(batch1)[:1]
    in2 = ctx.adapter.logits(batch2)[:1]
    d_alone, d_mates = _rel(alone, in1, alone), _rel(in1, in2, alone)
    value = max(d_alone, d_mates)
    return _result(key, title, (5,), FAIL if value > REL_TOL else PASS, value=value,
                   measured=f"alone vs in a batch of 4: {d_alone:.2g}; other batch-mates: "
                            f"{d_mates:.2g} (relative)",
                   threshold=f"<= {REL_TOL:g}",
                   fix="normalise over the feature axis (LayerNorm over axis=-1); nothing in "
                       "the forward pass may average across the batch axis",
                   details={"alone_vs_batch": d_alone, "batchmates": d_mates})


def padding_invariance(ctx: Context) -> ProbeResult:
    key, title = "padding_invariance", "padding under attention_mask=0 changes no real logit"
    ok, why = ctx.adapter.supports_mask(ctx.ids(1, 2))
    if not ok:
        return _result(key, title, (8,), SKIP, reason=why)
    t = ctx.T
    k = max(2, t // 4)
    n = t - k
    real = ctx.ids(1, n)
    ref = ctx.adapter.logits(real, np.ones((1, n), dtype=np.int64))
    left_mask = np.concatenate([np.zeros((1, k)), np.ones((1, n))], 1).astype(np.int64)
    pads1, pads2 = ctx.ids(1, k), ctx.ids(1, k)
    left1 = ctx.adapter.logits(np.concatenate([pads1, real], 1), left_mask)[:, k:]
    left2 = ctx.adapter.logits(np.concatenate([pads2, real], 1), left_mask)[:, k:]
    right = ctx.adapter.logits(np.concatenate([real, pads1], 1), left_mask[:, ::-1].copy())
    d_content, d_left = _rel(left1, left2, ref), _rel(left1, ref, ref)
    d_right = _rel(right[:, :n], ref, ref)
    value = max(d_content, d_left, d_right)
    return _result(key, title, (8,), FAIL if value > REL_TOL else PASS, value=value,
                   measured=f"pad contents move real logits by {d_content:.2g}; left-padded vs "
                            f"unpadded {d_left:.2g}, right-padded {d_right:.2g} (relative)",
                   threshold=f"<= {REL_TOL:g}",
                   fix="hide padded keys from every query: combine the causal mask with "
                       "attention_mask[:, None, None, :] (B, 1, 1, T) and count positions over "
                       "real tokens only",
                   details={"pad_content": d_content, "left_vs_unpadded": d_left,
                            "right_vs_unpadded": d_right})


def kv_cache(ctx: Context) -> ProbeResult:
    key, title = "kv_cache", "cached generation gives the same tokens as uncached"
    ad = ctx.adapter
    if ad.generate_fn is None:
        return _result(key, title, (11,), SKIP, reason="the model has no generate method")
    if ad.gen_takes_cache is False:
        return _result(key, title, (11,), SKIP, reason="generate has no use_cache argument")
    p = min(4, max(1, ctx.T // 2))
    n = 12 if ad.block_size is None else max(1, min(12, ad.block_size - p))
    prompt = ctx.ids(4, p)
    runs = {}
    try:
        # At init a model's greedy choice barely depends on context (it tends to repeat the
        # last token), so the weights are also swapped for sharp random ones for a second run.
        for weights in ("own", "sharp"):
            if weights == "sharp":
                ad.randomize(ctx.rng)
            cached = ad.generate(prompt, n, True, ctx.seed)[:, p:]
            fresh = ad.generate(prompt, n, False, ctx.seed)[:, p:]
            if cached.shape != fresh.shape:
                return _result(key, title, (11,), FAIL, value=1.0,
                               measured=f"cached output {cached.shape} vs uncached "
                                        f"{fresh.shape}",
                               fix="the cached path must produce one token per step")
            runs[weights] = cached != fresh
    finally:
        ad.restore_weights()
    differ = runs["own"] | runs["sharp"]
    frac = float(differ.mean())
    first = int(np.argmax(differ.any(0))) if differ.any() else -1
    measured = (f"{int(runs['own'].sum())} of {differ.size} greedy tokens differ with the "
                f"model's weights, {int(runs['sharp'].sum())} with sharp random weights"
                + (f"; first at step {first}" if first >= 0 else ""))
    return _result(key, title, (11,), FAIL if differ.any() else PASS, value=frac,
                   measured=measured, threshold="0 tokens differ",
                   fix="append each step's keys and values to the cache (grow it along time); "
                       "never replace it with the newest token's",
                   details={"differ_own": int(runs["own"].sum()),
                            "differ_sharp": int(runs["sharp"].sum()), "steps": n})


SEARCH_LENGTHS = (32, 64, 128, 256)


def _find_length_limit(ctx: Context) -> int | None:
    """Without a known block size: the longest length that still runs before the first of
    SEARCH_LENGTHS that fails (so the probe then asks for one more token), or None."""
    ok = ctx.T
    for t in SEARCH_LENGTHS:
        try:
            ctx.adapter.logits(ctx.ids(1, t))
        except Exception:  # noqa: BLE001 - failing here is what we look for
            lo, hi = ok, t              # runs at lo, fails at hi: bisect to the limit
            while hi - lo > 1:
                mid = (lo + hi) // 2
                try:
                    ctx.adapter.logits(ctx.ids(1, mid))
                    lo = mid
                except Exception:  # noqa: BLE001
                    hi = mid
            return lo
        ok = t
    return None


_LIMIT_WORDS = ("block_size", "block size", "length", "context", "max_len", "too long",
                "exceeds", "positions")


def names_the_limit(err: BaseException, bs: int) -> bool:
    """A clear refusal: a ValueError whose message gives the limit (block_size) or the length
    asked for, in words about length. A raw IndexError from the table, or a broadcasting error
    that happens to print the shapes, is not one."""
    msg = str(err).lower()
    numbers = {int(n) for n in re.findall(r"\d+", msg)}
    return isinstance(err, ValueError) and bool(numbers & {bs, bs + 1}) \
        and any(w in msg for w in _LIMIT_WORDS)


def reused_rows(ctx: Context, ids: np.ndarray, bs: int) -> list[str]:
    """Parameters with exactly bs rows that the graph of a (1, bs + 1) call gathers bs + 1
    rows from: a table read at more positions than it has rows, so some row was used twice
    (positions clamped or wrapped). Empty when the model builds no graph."""
    ad = ctx.adapter
    tables = {id(p): n for n, p in ad.params
              if p.data.ndim == 2 and p.data.shape[0] == bs and bs != ctx.V}
    if not tables:
        return []
    try:
        logits, _ = ad.forward(ids)
    except Exception:  # noqa: BLE001 - the no-graph call already ran; nothing more to read
        return []
    found = []
    for node in st.collect(logits):
        if node.op != "getitem" or not node.parents:
            continue
        table = st.base_param(node.parents[0], tables)
        if table is not None and node.data.ndim >= 2 and node.data.shape[-2] == bs + 1:
            found.append(tables[id(table)])
    return sorted(set(found))


def position_range(ctx: Context) -> ProbeResult:
    key, title = "position_range", ("past block_size the model runs correctly or refuses "
                                    "clearly (block_size + 1 tokens)")
    bs = ctx.adapter.block_size
    if bs is None:
        bs = _find_length_limit(ctx)
        if bs is None:
            return _result(key, title, (7,), SKIP,
                           reason=f"block size unknown and the model ran at every length up to "
                                  f"{max(SEARCH_LENGTHS)} (give diagnose(block_size=...))")
    fix = ("check the length before the lookup and raise an error that names block_size "
           "(or crop inputs to the last block_size tokens), or use positions that extend past "
           "the table (RoPE, ALiBi or sinusoidal); never index, clamp or wrap the table blindly")
    ids = ctx.ids(1, bs + 1)
    try:
        long = ctx.adapter.logits(ids)
    except Exception as e:  # noqa: BLE001 - what the model raises is the measurement
        kind = type(e).__name__
        msg = str(e).splitlines()[0] if str(e) else ""
        clear = names_the_limit(e, bs)
        how = "refuses with a clear error" if clear else f"crashes with {kind}"
        return _result(key, title, (7,), PASS if clear else FAIL, value=float(bs),
                       measured=f"at {bs + 1} tokens it {how}: {msg[:120]}", fix=fix,
                       threshold="finite, consistent logits, or a ValueError naming the limit",
                       details={"error_type": kind, "error": msg, "clear_error": clear,
                                "runs": False})
    short = ctx.adapter.logits(ids[:, :bs])
    finite = bool(np.isfinite(long).all())
    shape_ok = long.shape[:2] == (1, bs + 1)
    consistent = shape_ok and _rel(long[:, :bs], short, short) <= REL_TOL
    reused = reused_rows(ctx, ids, bs)
    ok = finite and shape_ok and consistent and not reused
    measured = (f"at {bs + 1} tokens: logits {long.shape}, finite {finite}, first {bs} "
                f"positions {'equal' if consistent else 'differ from'} the {bs}-token call")
    if reused:
        measured += (f"; {', '.join(reused)} ({bs} rows) was read at {bs + 1} positions: a "
                     f"row reused silently (clamped or wrapped)")
    return _result(key, title, (7,), PASS if ok else FAIL, value=float(bs + 1),
                   measured=measured, fix=fix,
                   threshold="finite, consistent logits, or a ValueError naming the limit",
                   details={"finite": finite, "consistent": consistent, "runs": True,
                            "reused_tables": reused, "clear_error": False})


# ---------------------------------------------------------------------------- one graph at init

def build_graph(ctx: Context) -> None:
    """Forward one batch with targets, read the graph, backward once; fill ctx."""
    ad = ctx.adapter
    ctx.names = {id(p): n for n, p in ad.params}
    ids, targets = ctx.ids(4, ctx.T), ctx.ids(4, ctx.T)
    logits, loss = ad.forward(ids, targets=targets)
    if not logits.parents and not logits.requires_grad:
        raise Unsupported("the logits carry no autograd graph (numpy output, no_grad inside "
                          "the model, or no parameter that requires grad)")
    if loss is None:
        loss = F.cross_entropy(logits, targets)
    ctx.loss = float(loss.item())
    ctx.logits_std = float(np.std(logits.data))
    ctx.anatomy = st.analyse(logits, ids.shape, ctx.V, ctx.names)
    ctx.loss_nodes = st.collect(loss)
    ctx.loss_requires_grad = loss.requires_grad
    ad.clear_grads()
    if loss.requires_grad:
        loss.backward(retain_graph=True)  # the probes read the graph afterwards
    ctx.grads = {id(p): p.grad for _, p in ad.params}


def _layer_groups(ctx: Context) -> dict[int, list[Tensor]]:
    """Parameters by layer index: from their names, else from the scopes of the ops using them."""
    groups: dict[int, list[Tensor]] = defaultdict(list)
    for name, p in ctx.adapter.params:
        i = st.layer_of(name)
        if i is not None:
            groups[i].append(p)
    if len(groups) >= 2 or ctx.anatomy is None:
        return dict(sorted(groups.items()))
    groups.clear()
    for _, p in ctx.adapter.params:
        scopes = [st.layer_of(c.scope) for c in ctx.anatomy.children.get(id(p), [])]
        scopes = [s for s in scopes if s is not None]
        if scopes:
            groups[Counter(scopes).most_common(1)[0][0]].append(p)
    return dict(sorted(groups.items()))


def gradient_flow(ctx: Context) -> ProbeResult:
    key, title = "gradient_flow", "gradient norm by depth at init, and a skip path in every layer"
    groups = _layer_groups(ctx)
    if len(groups) < 2:
        return _result(key, title, (2,), SKIP,
                       reason="fewer than two layers found in parameter names (h.0., layers.0., "
                              "blocks.0.) or op scopes")
    if not ctx.loss_requires_grad:
        return _result(key, title, (2,), SKIP, reason="the loss has no gradient path at all "
                                                      "(see dead_parameters)")
    norms = {i: math.sqrt(sum(st.grad_norm(ctx.grads.get(id(p))) ** 2 for p in ps))
             for i, ps in groups.items()}
    vals = list(norms.values())
    lo, hi = min(vals), max(vals)
    span = hi / lo if lo > 0 else float("inf")
    skips = Counter(s.layer for s in ctx.anatomy.skips)
    per_layer = {i: skips.get(i, 0) for i in groups}
    missing = [i for i, c in per_layer.items() if c == 0]
    fails = []
    if missing:
        fails.append("add the skip path in every block: x = x + sublayer(norm(x))")
    if span > GRAD_SPAN:
        fails.append("gradients vanish or explode with depth: use residual connections, "
                     "pre-norm, and scale output projections' init by 1/sqrt(2 n_layer)")
    order = sorted(norms)
    measured = (f"layer grad norms {norms[order[0]]:.3g} (layer {order[0]}) .. "
                f"{norms[order[-1]]:.3g} (layer {order[-1]}), span {span:.3g}x; skip paths "
                f"per layer {[per_layer[i] for i in order]}")
    return _checked(key, title, (2,), fails, value=span, measured=measured,
                    threshold=f"span <= {GRAD_SPAN:g}x and >= 1 skip path per layer",
                    details={"layer_norms": {f"layer {i}": norms[i] for i in order},
                             "skips_per_layer": per_layer, "layers_without_skip": missing})


def norm_placement(ctx: Context) -> ProbeResult:
    key, title = "norm_placement", "pre-norm everywhere: x + f(norm(x)), never norm(x + f(x))"
    skips = sorted(ctx.anatomy.skips, key=lambda s: ctx.anatomy.index[id(s.node)])
    if len(skips) < 2:
        return _result(key, title, (1,), SKIP,
                       reason="fewer than two residual additions found, so there is no "
                              "placement to read")
    is_skip = {id(s.node): s for s in skips}
    kind: dict[int, str] = {}
    for s in skips:
        a = s.identity
        if id(a) in is_skip:
            kind[id(a)] = "pre"            # the raw sum carries on as the stream
        elif st.is_norm(a):
            src = st.norm_input(a)
            if src is not None and id(src) in is_skip:
                kind[id(src)] = "post"     # the stream is the normalised sum
    seq = [(s.layer, kind[id(s.node)]) for s in skips if id(s.node) in kind]
    if not seq:
        return _result(key, title, (1,), SKIP, reason="could not follow the residual stream "
                                                      "from one skip addition to the next")
    n_post = sum(k == "post" for _, k in seq)
    n_pre = len(seq) - n_post
    post_layers = sorted({i for i, k in seq if k == "post" and i is not None})
    label = "pre-norm" if not n_post else "post-norm" if not n_pre else "mixed pre/post-norm"
    measured = f"{label}: {n_pre} pre, {n_post} post of {len(seq)} sublayers read"
    if post_layers:
        measured += f"; post-norm in layers {post_layers}"
    return _result(key, title, (1,), FAIL if n_post else PASS, value=float(n_post),
                   measured=measured, threshold="0 post-norm sublayers",
                   fix="normalise each sublayer's input, not the sum: x = x + f(LN(x)) in every "
                       "block, with one final LayerNorm before the head",
                   details={"sequence": seq})


def _through_shape_ops(node: Tensor) -> Tensor:
    while node.op in ("reshape", "permute", "getitem", "expand") and node.parents:
        node = node.parents[0]
    return node


def final_norm(ctx: Context) -> ProbeResult:
    key, title = "final_norm", "the head reads a normalised stream; init loss is near ln(V)"
    an = ctx.anatomy
    ln_v = math.log(ctx.V)
    excess = ctx.loss - ln_v
    if an.head is None:
        return _result(key, title, (6,), SKIP,
                       reason="could not find the matmul with a parameter that makes the logits",
                       details={"init_loss": ctx.loss, "ln_vocab": ln_v})
    src = _through_shape_ops(an.head_input)
    normed = st.is_norm(src)
    rms = float(np.sqrt(np.mean(np.square(an.head_input.data.astype(np.float64)))))
    fails = []
    if not normed:
        fails.append("apply a final LayerNorm to the residual stream before the output head")
    if not math.isfinite(excess) or excess > LOSS_MARGIN:
        fails.append("logits are too large at init: initialise the head (and embeddings) "
                     "small, e.g. std 0.02, so the first loss is about ln(V)")
    maker = st.strip_affine(src).op or "a leaf"
    measured = (f"head input {'is' if normed else 'is NOT'} normalised (rms {rms:.3g}, made by "
                f"{maker}); init loss {ctx.loss:.3f} vs ln(V) {ln_v:.3f}; "
                f"logit std {ctx.logits_std:.3g}")
    return _checked(key, title, (6,), fails, value=excess, measured=measured,
                    threshold=f"normalised, and loss - ln(V) <= {LOSS_MARGIN}",
                    details={"init_loss": ctx.loss, "ln_vocab": ln_v, "head_input_rms": rms,
                             "logit_std": ctx.logits_std, "normalised": normed})


def ffn_width(ctx: Context) -> ProbeResult:
    key, title = "ffn_width", "feed-forward hidden width about 4 x d_model"
    ffns = ctx.anatomy.ffns
    if not ffns:
        return _result(key, title, (3,), SKIP,
                       reason="no feed-forward pair (matmul -> nonlinearity -> matmul) found")
    worst = min(ffns, key=lambda f: f.hidden / f.width)
    ratio = worst.hidden / worst.width
    return _result(key, title, (3,), FAIL if ratio < FFN_MIN_RATIO else PASS, value=ratio,
                   measured=f"d_ff / d_model = {ratio:.3g} ({worst.hidden} / {worst.width}) in "
                            f"{len(ffns)} FFN(s), narrowest {worst.up}",
                   threshold=f">= {FFN_MIN_RATIO:g}",
                   fix=f"widen the FFN hidden layer to 4 x d_model ({4 * worst.width})",
                   details={"ffns": [(f.up, f.width, f.hidden) for f in ffns]})


def _total_params(ctx: Context) -> int:
    return int(sum(p.size for _, p in ctx.adapter.params))


def tied_embeddings(ctx: Context) -> ProbeResult:
    key, title = "tied_embeddings", "the output head reuses the token embedding"
    an = ctx.anatomy
    if an.token_embedding is None or an.head_weight is None:
        what = "token embedding" if an.token_embedding is None else "output head"
        return _result(key, title, (4,), SKIP, reason=f"could not find the {what} in the graph")
    total = _total_params(ctx)
    emb = an.token_embedding
    extra = int(an.head_weight.size)
    name = ctx.names.get(id(an.head_weight), "head")
    if an.tied:
        return _result(key, title, (4,), PASS, value=0.0,
                       measured=f"tied: the head uses {ctx.names.get(id(emb), 'the embedding')} "
                                f"({emb.shape[0]} x {emb.shape[1]} counted once)",
                       threshold="tied")
    share = extra / total
    return _result(key, title, (4,), FAIL, value=float(extra),
                   measured=f"untied: {name} {tuple(an.head_weight.shape)} is a second "
                            f"vocabulary matrix, {extra:,} extra parameters ({share:.0%} of "
                            f"{total:,})",
                   threshold="tied",
                   fix=f"tie the head to the token embedding: logits = x @ "
                       f"{ctx.names.get(id(emb), 'wte.weight')}.T (saves {extra:,} parameters)",
                   details={"extra_parameters": extra, "share": share})


# what any tokenizer for English text meets: printable ASCII and a few common non-ASCII marks
PROBE_CHARS = string.ascii_letters + string.digits + string.punctuation + " \t\n" + \
    "\u00e9\u00f1\u00fc\u2014\u2019\u201c\u201d\u2026\u20ac"


def tokenizer_coverage(tok: Any, vocab: int, chars: str = PROBE_CHARS
                       ) -> tuple[list[str], list[str]]:
    """Characters of `chars` the tokenizer cannot read, as (silent, refused): `silent` encode
    without an error but do not survive decode(encode(c)) (or give ids outside the model's
    vocabulary): they collapse into <unk> unnoticed; `refused` make encode raise (a closed
    alphabet that says so). Works on a copy: tokenizers may count what they could not read."""
    tok = copy.deepcopy(tok)
    silent, refused = [], []
    for c in chars:
        try:
            ids = list(tok.encode(c))
        except Exception:  # noqa: BLE001 - a tokenizer that raises cannot read it, loudly
            refused.append(c)
            continue
        try:
            ok = tok.decode(ids) == c and all(0 <= int(i) < vocab for i in ids)
        except Exception:  # noqa: BLE001 - ids it cannot even decode
            ok = False
        if not ok:
            silent.append(c)
    return silent, refused


def _shown(chars: list[str]) -> str:
    return "".join(chars[:10]).encode("unicode_escape").decode("ascii")


def vocabulary(ctx: Context) -> ProbeResult:
    key, title = "vocabulary", "the vocabulary reads its text; embeddings' share of parameters"
    an = ctx.anatomy
    total = _total_params(ctx)
    emb = [an.token_embedding] if an.token_embedding is not None else []
    if an.head_weight is not None and an.tied is False:
        emb.append(an.head_weight)
    n_emb = int(sum(p.size for p in emb))
    share = n_emb / total if total else 0.0
    fails = []
    tok = ctx.tokenizer
    silent: list[str] = []
    refused: list[str] = []
    measured = f"vocab {ctx.V}; embeddings {n_emb:,} of {total:,} parameters ({share:.0%})"
    if tok is not None and callable(getattr(tok, "encode", None)) and \
            callable(getattr(tok, "decode", None)):
        # With the text the model reads, every character of it must round-trip. Without it, a
        # tokenizer may have a closed alphabet (a character vocabulary built from all of its
        # corpus is correct), so only characters it swallows silently count against it.
        chars = "".join(sorted(set(ctx.text))) if ctx.text is not None else PROBE_CHARS
        silent, refused = tokenizer_coverage(tok, ctx.V, chars)
        where = (f"{len(chars)} distinct characters of the given text" if ctx.text is not None
                 else f"{len(chars)} probe characters")
        if silent or (ctx.text is not None and refused):
            fails.append("use byte-level BPE (every byte has an id) or build the character "
                         "vocabulary from all the text, so nothing collapses into <unk>")
        measured += f"; tokenizer: {len(silent)} of {where} collapse silently" + \
            (f" ({_shown(silent)})" if silent else "")
        if refused:
            measured += (f", {len(refused)} refused with an error ({_shown(refused)})"
                         + ("" if ctx.text is not None else
                            ": a closed alphabet, fine when it covers the training text "
                            "(give the training text, text= or --text, to check it)"))
    elif ctx.V < MIN_VOCAB:
        fails.append(f"grow the vocabulary (>= {MIN_VOCAB}; characters: ~100-300, BPE: "
                     "32k-50k) so text does not collapse into shared unknown ids")
    if share > MAX_EMBED_SHARE:
        fails.append("the vocabulary is too big for this model: embeddings take most "
                     "parameters; shrink the vocabulary or widen/deepen the model")
    return _checked(key, title, (10,), fails, value=float(ctx.V),
                    measured=measured,
                    threshold="no character collapses silently (with text=: every character "
                              f"of it round-trips; without a tokenizer: vocab >= {MIN_VOCAB}); "
                              f"embedding share <= {MAX_EMBED_SHARE:.0%}",
                    details={"embedding_share": share, "lost_characters": silent + refused,
                             "silent_characters": silent, "refused_characters": refused,
                             "checked_text": ctx.text is not None,
                             "tokenizer": type(tok).__name__ if tok is not None else None})


def dead_parameters(ctx: Context) -> ProbeResult:
    key, title = "dead_parameters", "every parameter receives gradient from the loss"
    params = ctx.adapter.params
    dead = [(n, p) for n, p in params
            if ctx.grads.get(id(p)) is None or not np.any(ctx.grads[id(p)])]
    fix = ("keep the loss differentiable: compute it with cross-entropy on the logits "
           "(teacher forcing), not from argmax/sampled ids, detached tensors or integer casts")
    if not dead:
        return _result(key, title, (9,), PASS, value=0.0,
                       measured=f"all {len(params)} parameter tensors get a nonzero gradient",
                       threshold="0 without gradient")
    in_graph = {id(n) for n in ctx.loss_nodes}
    cuts = st.cut_points(ctx.loss_nodes)
    above = [(c, st.params_above(c, ctx.names)) for c in cuts]
    why: dict[str, str] = {}
    for n, p in dead:
        by = sorted({st.describe_cut(c) for c, ps in above if id(p) in ps})
        if by:
            why[n] = "cut by " + ", ".join(by)
        elif id(p) not in in_graph:
            why[n] = ("no path from the loss reaches it (cut upstream by an argmax, comparison "
                      "or integer cast, made under no_grad, copied out of the graph, or unused)")
        else:
            why[n] = "gradient is exactly zero"
    ops = Counter(w for w in why.values())
    top = "; ".join(f"{k} ({v})" for k, v in ops.most_common(3))
    if not ctx.loss_requires_grad:
        top = "the loss itself has no gradient path; " + top
    return _result(key, title, (9,), FAIL, value=float(len(dead)),
                   measured=f"{len(dead)} of {len(params)} parameter tensors get no gradient: "
                            f"{top}",
                   threshold="0 without gradient", fix=fix,
                   details={"dead": why, "cut_ops": sorted({st.describe_cut(c) for c in cuts})})


BEHAVIOUR = (causality, batch_independence, padding_invariance, kv_cache, position_range)
STRUCTURE = (gradient_flow, norm_placement, final_norm, ffn_width, tied_embeddings, vocabulary,
             dead_parameters)
