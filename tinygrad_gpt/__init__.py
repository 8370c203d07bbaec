"""tinygrad_gpt: a reverse-mode tensor autograd engine on numpy and a GPT built on it, made to
show how transformers learn and how they break."""
from .engine import (Tensor, cat, detect_anomaly, enable_grad, gradcheck, matmul, name_scope,
                     no_grad, ones, ones_like, randn, record_gradients, stack, where, zeros,
                     zeros_like)
from . import fast, functional, nn, optim
from .fast import blas_threads
from .model import GPT, GPTConfig

__version__ = "0.1.0"

__all__ = ["Tensor", "cat", "stack", "where", "no_grad", "enable_grad", "name_scope",
           "detect_anomaly", "record_gradients", "gradcheck", "functional", "nn", "optim",
           "GPT", "GPTConfig", "blas_threads", "zeros", "ones", "randn", "zeros_like",
           "ones_like", "matmul", "fast"]
