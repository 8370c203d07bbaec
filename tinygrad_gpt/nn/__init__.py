"""Neural-network building blocks on the engine: Module, Parameter, layers."""
from .layers import Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList, Parameter

__all__ = ["Module", "ModuleList", "Parameter", "Linear", "Embedding", "LayerNorm", "Dropout"]
