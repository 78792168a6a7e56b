"""One validator for the numbers that steer training: learning rates, weight decay, momentum,
betas, eps, the L2 weight, noise levels and the like.

A hyperparameter that is not a finite real number never makes sense, and accepting one is a
silent wrong number: `lr=inf` or `lr=nan` turns every parameter into inf or nan on the first
step, a complex or array `lr` turns every parameter into a complex number or an array. So the
optimizers, the losses, the training loops and the data generators all go through
`hyperparameter`, which refuses such values with a message that names the argument, shows what
was passed and says what is expected.
"""
from __future__ import annotations

import math
import numbers

__all__ = ["hyperparameter"]


def _describe(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    if hi == math.inf and lo == -math.inf:
        return "a finite number"
    if hi == math.inf:
        return f"a finite number {'>' if lo_open else '>='} {lo:g}"
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    return f"a number in {left}{lo:g}, {hi:g}{right}"


def hyperparameter(x, name: str, lo: float = 0.0, hi: float = math.inf, *,
                   lo_open: bool = False, hi_open: bool = False) -> float:
    """`x` as a float, or an error naming `name`, the value and the range expected.

    Accepts Python and NumPy real scalars (not bool: `True` as a learning rate is a slip).
    Refuses complex numbers, arrays (also 0-d ones), tensors, strings (TypeError), and nan,
    inf and values outside [lo, hi] (ValueError; `lo_open`/`hi_open` exclude the end).
    """
    expected = _describe(lo, hi, lo_open, hi_open)
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number ({expected}), got "
                        f"{type(x).__name__}: {_short(x)}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {expected}, got {v!r}: a non-finite {name} makes "
                         "every number it touches inf or nan")
    if v < lo or (lo_open and v == lo) or v > hi or (hi_open and v == hi):
        raise ValueError(f"{name} must be {expected}, got {v!r}")
    return v


def _short(x, limit: int = 80) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."
