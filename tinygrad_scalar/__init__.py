"""tinygrad_scalar: a scalar reverse-mode autograd engine for learning and teaching backprop."""
from .engine import OPS, Op, Value, apply, no_grad, is_grad_enabled, topological_order

__all__ = ["Value", "no_grad", "is_grad_enabled", "Op", "OPS", "apply", "topological_order"]
__version__ = "0.1.0"
