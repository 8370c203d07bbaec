"""The GPT: config with mistake switches, attention, blocks, positions, KV cache, model."""
from .attention import CausalSelfAttention, attend
from .block import MLP, Block
from .config import GPTConfig
from .gpt import GPT, init_loss
from .kv_cache import KVCache

__all__ = ["GPT", "GPTConfig", "Block", "MLP", "CausalSelfAttention", "attend", "KVCache",
           "init_loss"]
