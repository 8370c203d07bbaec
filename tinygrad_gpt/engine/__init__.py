"""The autograd engine: `Tensor`, the primitive table `OPS`, the backward driver, grad mode,
name scopes, anomaly mode, gradient recording and `gradcheck`."""
from . import malloc  # noqa: F401  (glibc malloc thresholds, see malloc.py)
from .backward import all_parents, grad_stats, post_order, topological_order, unbroadcast
from .gradcheck import gradcheck
from .ops import OPS, register
from . import fused  # noqa: F401  (registers the fused primitives)
from .state import (detect_anomaly, enable_grad, is_grad_enabled, name_scope, no_grad,
                    record_gradients)
from .tensor import Tensor, apply, cat, matmul, stack, where
from .tensor import NUMPY_NAMES, numpy_table, ones, ones_like, randn, zeros, zeros_like
from .threads import blas_threads

__all__ = ["Tensor", "OPS", "register", "apply", "cat", "stack", "where", "matmul", "no_grad",
           "enable_grad", "is_grad_enabled", "name_scope", "detect_anomaly", "record_gradients",
           "gradcheck", "blas_threads", "unbroadcast", "grad_stats", "topological_order",
           "post_order", "all_parents", "zeros", "ones", "randn", "zeros_like", "ones_like",
           "NUMPY_NAMES", "numpy_table"]
