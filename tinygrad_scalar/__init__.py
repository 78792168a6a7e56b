"""tinygrad_scalar: a scalar reverse-mode autograd engine for learning and teaching backprop.

The submodules hold the rest: `nn`, `losses`, `optim`, `data`, `train`, `plot` (neural networks),
`static` (trace once, replay a batch with NumPy), `teach` (seeing backprop), `viz` (drawing).
"""
from .engine import (OPS, Op, Value, apply, enable_grad, is_grad_enabled, no_grad,
                     topological_order)
from .custom import DefinitionError, OpFunction, custom_op, define_op
from .expr import ExprError
from .expr import parse as parse_expr
from .functional import grad, hessian, jacobian, jvp, value_and_grad, vjp
from .gradcheck import GradcheckError, GradcheckReport, gradcheck, gradcheck_report
from .teach import (backprop_frames, check_answer, expression_swell, forward_mode, misconceptions,
                    mode_costs, narrate, paths, quiz, symbolic)
from .viz import GraphvizNotFoundError, draw_dot, render_to, show, show_backward, to_svg

__all__ = [
    "Value", "no_grad", "enable_grad", "is_grad_enabled", "topological_order", "Op", "OPS",
    "apply",
    "define_op", "custom_op", "OpFunction", "DefinitionError",
    "grad", "value_and_grad", "jvp", "vjp", "jacobian", "hessian",
    "gradcheck", "gradcheck_report", "GradcheckReport", "GradcheckError",
    "narrate", "paths", "forward_mode", "mode_costs", "backprop_frames",
    "misconceptions", "quiz", "check_answer", "symbolic", "expression_swell",
    "draw_dot", "show", "show_backward", "to_svg", "render_to", "GraphvizNotFoundError",
    "parse_expr", "ExprError", "Program", "trace", "TraceError",
]
__version__ = "0.1.0"

_LAZY = {"Program": "static", "trace": "static", "TraceError": "static"}


def __getattr__(name: str):
    """The static replay needs NumPy: import it only when one of its names is asked for."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'tinygrad_scalar' has no attribute {name!r}")
