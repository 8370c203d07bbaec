"""`GPT`: token + position embeddings, a stack of Blocks, an optional final LayerNorm and a
(tied or separate) head, with GPT-2's parameter names and layouts, input validation, and
cached generation."""
from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from .. import fast
from .. import functional as F
from ..engine import Tensor, name_scope, no_grad
from ..fast import decode as fast_decode
from ..nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, Parameter
from .attention import CausalSelfAttention
from .block import MLP, Block
from .config import GPTConfig
from .pretrained import read_pretrained
from .kv_cache import Context
from .positions import rope_cos_sin, sinusoidal_table
from .sampling import check_sampling, sample

IGNORE_INDEX = -100


class Transformer(Module):
    """The `transformer.` part of GPT-2's names: wte, wpe, h.N, ln_f."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        self.wte = Embedding(config.vocab_size, config.n_embd, rng=rng)
        if config.pos_encoding == "learned":
            self.wpe = Embedding(config.block_size, config.n_embd, std=0.01, rng=rng)
        self.drop = Dropout(config.dropout, rng)
        self.h = ModuleList(Block(config, rng, i) for i in range(config.n_layer))
        if config.final_norm:
            self.ln_f = LayerNorm(config.n_embd, config.layer_norm_eps, config.bias,
                                  axis=config.ln_axis)


class LMHead(Module):
    """logits = x @ weight.T with weight (vocab, n_embd), as Hugging Face stores lm_head."""

    def __init__(self, weight: Parameter):
        self.weight = weight

    def forward(self, x: Tensor) -> Tensor:
        if fast.is_enabled() and x.dtype == self.weight.dtype:
            return fast.linear_t(x, self.weight)
        return x @ self.weight.T


class GPT(Module):
    """A GPT-2 style decoder. `logits, loss = model(idx, targets=None, attention_mask=None)`."""

    def __init__(self, config: GPTConfig, seed: int = 0):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT: expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        rng = np.random.default_rng(seed)
        self.transformer = Transformer(config, rng)
        if config.tie_weights:
            self.lm_head = LMHead(self.transformer.wte.weight)
        else:
            w = rng.normal(0.0, 0.02, (config.vocab_size, config.n_embd)).astype(np.float32)
            self.lm_head = LMHead(Parameter(w))
        self.named_parameters()  # gives every parameter its dotted name

    @classmethod
    def from_pretrained(cls, path_or_name: str, dropout: float = 0.0) -> "GPT":
        """GPT-2 from a Hugging Face folder (config.json, model.safetensors or its shards) or a
        hub name (`gpt2`, `distilgpt2`, `gpt2-medium`, fetched with huggingface_hub when
        installed and online), in eval mode. See `model/pretrained.py`."""
        config, state = read_pretrained(path_or_name, dropout)
        model = cls(config)
        model.load_state_dict(state)
        return model.eval()

    # ------------------------------------------------------------------ validation
    def _check_ids(self, idx: Any, what: str = "idx") -> np.ndarray:
        ids = idx.data if isinstance(idx, Tensor) else np.asarray(idx)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"GPT: {what} must hold integer token ids, got dtype {ids.dtype}")
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"GPT: {what} must have shape (B, T) with T >= 1, got {ids.shape}")
        v = self.config.vocab_size
        if ids.size and (ids.min() < 0 or ids.max() >= v):
            bad = np.argwhere((ids < 0) | (ids >= v))[0]
            pos = tuple(int(i) for i in bad)
            raise ValueError(f"GPT: token id {int(ids[pos])} at position {pos} is out of range "
                             f"for vocab_size {v} (allowed 0..{v - 1})")
        return ids.astype(np.int64, copy=False)

    def check_length(self, t: int) -> None:
        """Refuse a sequence the positions cannot cover (learned positions: past block_size).
        A public hook: the lab overrides it to show a model without the check."""
        cfg = self.config
        if cfg.pos_encoding == "learned" and t > cfg.block_size:
            raise ValueError(f"GPT: sequence length {t} exceeds block_size {cfg.block_size} "
                             f"for learned positions (allowed 1..{cfg.block_size}); crop the "
                             "input, or use pos_encoding='sinusoidal', 'rope' or 'alibi' to go "
                             "longer")

    def _check_mask(self, attention_mask: Any, shape: tuple) -> np.ndarray:
        m = attention_mask.data if isinstance(attention_mask, Tensor) else \
            np.asarray(attention_mask)
        if m.shape != shape:
            raise ValueError(f"GPT: attention_mask has shape {m.shape}, expected {shape} (the "
                             "shape of idx)")
        if m.dtype != np.bool_ and not np.isin(m, (0, 1)).all():
            raise ValueError("GPT: attention_mask must hold only 0 (padding) and 1 (token)")
        return m.astype(bool)

    # ------------------------------------------------------------------ forward
    def _positions_features(self, positions: np.ndarray):
        cfg = self.config
        if cfg.pos_encoding == "rope":
            cos, sin = rope_cos_sin(positions, cfg.head_size)
            if positions.ndim == 2:                      # (B, T, hs) -> (B, 1, T, hs)
                cos, sin = cos[:, None], sin[:, None]
            return cos, sin
        return None

    def position_vectors(self, positions: np.ndarray) -> Tensor | None:
        """What is added to the token embeddings at `positions` (T,) or (B, T): a learned row
        or a sinusoid; None for RoPE (it rotates queries and keys instead), ALiBi (it biases the
        attention scores by distance) and no positions.
        A public hook: the lab overrides it with a hand-written lookup (mistake 7)."""
        cfg = self.config
        if cfg.pos_encoding == "learned":
            if positions.max() >= cfg.block_size:
                raise ValueError(f"GPT: position {int(positions.max())} is past block_size "
                                 f"{cfg.block_size} for learned positions (allowed 0.."
                                 f"{cfg.block_size - 1})")
            return self.transformer.wpe(positions)
        if cfg.pos_encoding == "sinusoidal":
            dtype = self.transformer.wte.weight.dtype
            return Tensor(sinusoidal_table(positions, cfg.n_embd, dtype))
        return None

    def forward_positions(self, ids: np.ndarray, positions: np.ndarray,
                          allowed: np.ndarray | None, caches: list | None = None,
                          last_only: bool = False) -> Tensor:
        """Logits for checked ids (B, T) at explicit `positions`, with the attention mask
        `allowed` (B|1, 1, T, Tk) and per-layer KV caches: what `forward` and `generate` call,
        public for experiments that step a cache by hand (the lab's mistake 11)."""
        cfg = self.config
        tr = self.transformer
        with name_scope("wte"):
            x = tr.wte(ids)                                           # (B, T, C)
        pos = self.position_vectors(positions)
        if pos is not None:
            with name_scope("wpe"):
                x = x + pos
        x = tr.drop(x)
        rope = self._positions_features(positions)
        alibi = positions if cfg.pos_encoding == "alibi" else None   # biases made per layer
        for i, block in enumerate(tr.h):
            with name_scope(f"h.{i}"):
                x = block(x, allowed, rope, caches[i] if caches is not None else None, alibi)
        if cfg.final_norm:
            with name_scope("ln_f"):
                x = tr.ln_f(x)
        if last_only:
            x = x[:, -1:, :]
        with name_scope("lm_head"):
            return self.lm_head(x)                                    # (B, T, V)

    def forward(self, idx: Any, targets: Any = None,
                attention_mask: Any = None) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, V) and, with targets, the mean cross-entropy over real tokens.
        `attention_mask` (B, T) marks real tokens with 1 and padding with 0: keys at padding
        are hidden from every query, positions count real tokens only, and padded targets are
        ignored by the loss (mask_padding=False is mistake 8: the mask is ignored)."""
        ids = self._check_ids(idx)
        b, t = ids.shape
        self.check_length(t)
        allowed = np.tril(np.ones((t, t), dtype=bool))[None, None]    # (1, 1, T, T)
        positions = np.arange(t)
        mask = None
        if attention_mask is not None:
            mask = self._check_mask(attention_mask, ids.shape)
            if self.config.mask_padding:
                allowed = allowed & mask[:, None, None, :]            # (B, 1, T, T)
                positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
        logits = self.forward_positions(ids, positions, allowed)
        loss = None
        if targets is not None:
            tg = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
            if tg.shape != ids.shape:
                raise ValueError(f"GPT: targets have shape {tg.shape}, expected {ids.shape}")
            if mask is not None:
                tg = np.where(mask, tg, IGNORE_INDEX)
            loss = F.cross_entropy(logits, tg, ignore_index=IGNORE_INDEX)
        return logits, loss

    # ------------------------------------------------------------------ generation
    def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                 seed: int | None = None) -> np.ndarray:
        """Prompt (B, T) plus `max_new_tokens` sampled tokens. top_k=1 (or temperature=0) is
        greedy. Learned positions see the last block_size tokens; sinusoidal, RoPE, ALiBi and
        no positions see the whole sequence. The cache gives the same tokens as recomputing."""
        ids = self._check_ids(idx)
        check_sampling(max_new_tokens, temperature, top_k, top_p, self.config.vocab_size)
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        try:
            with no_grad(), self._generation_forward() as forward:
                context = Context(self.config, use_cache, ids.shape[1] + max_new_tokens)
                for _ in range(max_new_tokens):
                    logits = context.next_logits(forward, ids)                # (B, V)
                    nxt = sample(logits, temperature, top_k, top_p, rng)
                    ids = np.concatenate([ids, nxt[:, None]], axis=1)
        finally:
            self.train(was_training)
        return ids

    def _generation_forward(self) -> contextlib.AbstractContextManager:
        """The forward generate runs: with fast on, the no-graph numpy decode where it
        reproduces this model exactly (it fails closed), else the reference forward."""
        if fast.is_enabled() and self._numpy_decode_reproduces():
            return fast_decode.session(self)
        return contextlib.nullcontext(self.forward_positions)

    def _numpy_decode_reproduces(self) -> bool:
        """The config's fields and values are in `fast.decode.REPRODUCED`, the public hooks and
        every submodule are this package's own, and no attention map is being recorded."""
        hooks = ("check_length", "position_vectors", "forward_positions")
        return (fast_decode.reproduces(self.config)
                and all(getattr(type(self), h) is getattr(GPT, h) for h in hooks)
                and all(type(m) in _DECODED for _, m in self.named_modules() if m is not self)
                and not any(b.attn.keep_attention for b in self.transformer.h))

    # ------------------------------------------------------------------ inspection
    def record_attention(self, on: bool = True) -> None:
        """Keep each layer's attention probabilities (B, nh, T, Tk) from the next forward."""
        for block in self.transformer.h:
            block.attn.keep_attention = on
            block.attn.last_attention = None

    def attention_maps(self) -> list:
        return [block.attn.last_attention for block in self.transformer.h]

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Also takes a Hugging Face GPT-2 state dict converted to numpy: its causal mask
        buffers (`.attn.bias`, `.attn.masked_bias`) are skipped; a GPT2Model's (or the hub
        file's) keys without the `transformer.` prefix get it; a tied model takes its head from
        `wte` when `lm_head.weight` is absent, and checks it equals `wte` when present."""
        state = {k: v for k, v in state.items()
                 if not (k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"))}
        if not any(k.startswith("transformer.") for k in state):
            state = {k if k.startswith("lm_head.") else f"transformer.{k}": v
                     for k, v in state.items()}
        if self.config.tie_weights and "lm_head.weight" not in state and \
                "transformer.wte.weight" in state:
            state["lm_head.weight"] = state["transformer.wte.weight"]
        if self.config.tie_weights and "lm_head.weight" in state and \
                "transformer.wte.weight" in state:
            a = np.asarray(getattr(state["lm_head.weight"], "data", state["lm_head.weight"]))
            b = np.asarray(getattr(state["transformer.wte.weight"], "data",
                                   state["transformer.wte.weight"]))
            if a.shape == b.shape and not np.array_equal(a, b):
                raise ValueError("load_state_dict: lm_head.weight differs from "
                                 "transformer.wte.weight, but this model ties them "
                                 "(tie_weights=True); load into tie_weights=False instead")
        super().load_state_dict(state, strict=strict)

    def __repr__(self) -> str:
        return f"GPT({self.config}, parameters={self.num_parameters():,})"


# the modules fast.decode reads the weights of; any other (a subclass, a replaced layer) falls
# back to the reference forward
_DECODED = (Transformer, LMHead, ModuleList, Block, MLP, CausalSelfAttention, Linear, LayerNorm,
            Embedding, Dropout)


def init_loss(vocab_size: int) -> float:
    """The loss of a uniform prediction, ln(vocab): what a fresh model should start near."""
    return math.log(vocab_size)
