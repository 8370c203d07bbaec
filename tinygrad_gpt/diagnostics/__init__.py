"""Find the mistakes in a transformer built on the engine: `diagnose(model)` probes causality,
batch independence, padding, the KV cache, positions, gradient flow by depth, norm placement,
the head, FFN width, tied embeddings, vocabulary and parameters cut off from the loss."""
from .core import diagnose
from .report import ProbeResult, Report

__all__ = ["diagnose", "Report", "ProbeResult"]
