"""`GPTConfig`: model sizes plus one field per mistake switch; every default is the fix."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

NORM_PLACEMENTS = ("pre", "post", "mixed")
BOOL_FIELDS = ("bias", "residual", "tie_weights", "final_norm", "mask_padding", "kv_cache_update")
POS_ENCODINGS = ("learned", "sinusoidal", "rope", "alibi", "none")


@dataclass
class GPTConfig:
    vocab_size: int = 65            # number of token ids
    block_size: int = 128           # longest context (and the learned position table's rows)
    n_layer: int = 4                # transformer blocks
    n_head: int = 4                 # attention heads; n_embd must divide evenly
    n_embd: int = 128               # residual stream width
    dropout: float = 0.0            # dropout on embeddings, attention and residual branches
    bias: bool = True               # biases in Linear and LayerNorm (GPT-2: True)
    layer_norm_eps: float = 1e-5    # GPT-2's epsilon
    # --- the mistake switches (defaults are the fixes) ---
    norm_placement: str = "pre"     # 1: "post" is x = LN(x + f(x)); "mixed" alternates by layer
    residual: bool = True           # 2: False drops the skip path: x = f(LN(x))
    ffn_hidden: int | None = None   # 3: None means 4 * n_embd; n_embd is the mistake
    tie_weights: bool = True        # 4: False gives lm_head its own (vocab, n_embd) matrix
    ln_axis: int = -1               # 5: 0 normalises across the batch instead of features
    final_norm: bool = True         # 6: False drops ln_f before the head
    pos_encoding: str = "learned"   # 7: also "sinusoidal", "rope", "alibi", "none"
    mask_padding: bool = True       # 8: False ignores attention_mask (causal mask only)
    kv_cache_update: bool = True    # 11: False keeps only the newest token in the cache

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        for name in BOOL_FIELDS:
            value = getattr(self, name)
            if isinstance(value, np.bool_):       # numpy's bool: store a plain one (JSON)
                value = bool(value)
                setattr(self, name, value)
            if not isinstance(value, bool):       # "False" or 0 would pass a truth test
                raise ValueError(f"GPTConfig: {name} must be True or False, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd {self.n_embd} is not divisible by n_head "
                             f"{self.n_head}")
        if self.pos_encoding == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"GPTConfig: rope needs an even head size, got "
                             f"{self.n_embd // self.n_head}")
        eps = self.layer_norm_eps
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or \
                not math.isfinite(eps) or not eps > 0:
            raise ValueError(f"GPTConfig: layer_norm_eps must be a finite number > 0, got "
                             f"{eps!r}")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool) or \
                not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.norm_placement not in NORM_PLACEMENTS:
            raise ValueError(f"GPTConfig: norm_placement must be one of {NORM_PLACEMENTS}, got "
                             f"{self.norm_placement!r}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"GPTConfig: pos_encoding must be one of {POS_ENCODINGS}, got "
                             f"{self.pos_encoding!r}")
        if isinstance(self.ln_axis, bool) or self.ln_axis not in (-1, 0):
            raise ValueError(f"GPTConfig: ln_axis must be -1 (features) or 0 (batch), got "
                             f"{self.ln_axis!r}")
        if self.ffn_hidden is not None and (not isinstance(self.ffn_hidden, int)
                                            or isinstance(self.ffn_hidden, bool)
                                            or self.ffn_hidden <= 0):
            raise ValueError(f"GPTConfig: ffn_hidden must be a positive integer or None, got "
                             f"{self.ffn_hidden!r}")

    @property
    def d_ff(self) -> int:
        return self.ffn_hidden if self.ffn_hidden is not None else 4 * self.n_embd

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"GPTConfig: unknown fields {unknown}")
        return cls(**d)

    def replace(self, **overrides: Any) -> "GPTConfig":
        return GPTConfig.from_dict({**asdict(self), **overrides})


def _parse_value(key: str, kind: str, text: str) -> Any:
    kind = kind.replace(" ", "")
    low = text.strip().lower()
    if kind.endswith("|None") and low in ("none", "null"):
        return None
    base = kind.split("|")[0]
    try:
        if base == "bool":
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if base == "int":
            return int(text)
        if base == "float":
            return float(text)
        return text.strip()
    except ValueError:
        raise ValueError(f"--config {key}={text}: expected {kind.replace('|', ' or ')}") \
            from None


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Command-line `--config` items, `["n_layer=2", "residual=false", "ffn_hidden=none"]`, to
    GPTConfig fields typed by the dataclass (bool, int, float, str, or None where allowed)."""
    kinds = {f.name: str(f.type) for f in fields(GPTConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--config: expected key=value, got {item!r}")
        if key not in kinds:
            raise ValueError(f"--config: unknown key {key!r} (known: {', '.join(kinds)})")
        out[key] = _parse_value(key, kinds[key], text)
    return out
