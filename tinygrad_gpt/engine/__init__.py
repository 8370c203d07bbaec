"""The autograd engine, the reference core: `Tensor`, the primitive table `OPS`, the one graph
walk with backward on it, grad mode, name scopes, the walk's observers (anomaly mode, gradient
recording) and `gradcheck`. The fast kernels live in `tinygrad_gpt.fast`."""
from .backward import all_parents, post_order, topological_order, unbroadcast
from .gradcheck import gradcheck
from .ops import OPS, register
from .recording import grad_stats
from .state import (detect_anomaly, enable_grad, is_grad_enabled, name_scope, no_grad, observe,
                    record_gradients)
from .tensor import Tensor, apply, cat, matmul, stack, where
from .tensor import NUMPY_NAMES, numpy_table, ones, ones_like, randn, zeros, zeros_like

__all__ = ["Tensor", "OPS", "register", "apply", "cat", "stack", "where", "matmul", "no_grad",
           "enable_grad", "is_grad_enabled", "name_scope", "detect_anomaly", "record_gradients",
           "observe", "gradcheck", "unbroadcast", "grad_stats", "topological_order",
           "post_order", "all_parents", "zeros", "ones", "randn", "zeros_like", "ones_like",
           "NUMPY_NAMES", "numpy_table"]
