"""The GPT: config with mistake switches, attention, blocks, positions, KV cache, model."""
from .attention import CausalSelfAttention, attend
from .block import MLP, Block
from .config import GPTConfig
from .gpt import GPT, init_loss
from .kv_cache import Context, KVCache

__all__ = ["GPT", "GPTConfig", "Block", "MLP", "CausalSelfAttention", "attend", "KVCache",
           "Context", "init_loss"]
