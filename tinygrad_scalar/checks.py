"""One home for the input checks that many modules repeat: a real number (not a bool), a flag, a
Value, "a Value or a sequence of Values". Each returns the checked input in its plain form or
raises a TypeError/ValueError that names what was passed, what was expected and where (`what`,
e.g. "narrate(gradient=...)"), so every caller gives the same kind of message.

`hyperparameter` is the one validator for the numbers that steer training (learning rates, weight
decay, momentum, betas, eps, the L2 weight, noise levels): a value that is not a finite real number
never makes sense there, and accepting one is a silent wrong number (`lr=inf` turns every parameter
into inf on the first step, a complex or array `lr` turns every parameter into one). The
optimizers, losses, training loops and data generators all go through it.

The module sits just above the engine (it knows what a Value is) and below everything else.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from .engine import Value

__all__ = ["short", "real_number", "finite_number", "flag", "value", "values", "hyperparameter"]


def short(x: Any, limit: int = 120) -> str:
    """repr(x) cut to a readable length for an error message (a million-entry list is not)."""
    r = repr(x)
    return r if len(r) <= limit else r[:limit - 20] + f"... ({len(r)} characters)"


def real_number(x: Any, what: str) -> float:
    """x as a float: an int, float or NumPy scalar. A bool, a Value (write v.data for its
    number) or anything else is a TypeError."""
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, (bool, Value)):
        return float(x)
    hint = " (write v.data for a Value's number)" if isinstance(x, Value) else ""
    raise TypeError(f"{what} needs a real number (int, float or NumPy scalar), got "
                    f"{type(x).__name__}: {short(x)}{hint}")


def finite_number(x: Any, what: str) -> float:
    """real_number, and neither inf nor nan (a ValueError)."""
    f = real_number(x, what)
    if not math.isfinite(f):
        raise ValueError(f"{what} needs a finite number, got {f!r}")
    return f


def flag(x: Any, what: str) -> bool:
    """x when it is True or False (not 0, 1 or 'yes', which would hide a misplaced argument)."""
    if isinstance(x, bool):
        return x
    raise TypeError(f"{what} must be True or False, got {type(x).__name__}: {short(x)}")


def value(x: Any, what: str) -> Value:
    """x itself when it is a Value, else a TypeError naming what was passed."""
    if isinstance(x, Value):
        return x
    raise TypeError(f"{what} needs a Value, got {type(x).__name__}: {short(x)}")


def values(xs: Any, what: str, *, allow_empty: bool = False) -> list:
    """A Value or an iterable of Values, as a list of Values (a string, a dict or a set is
    refused: no order, or not what was meant)."""
    if isinstance(xs, Value):
        return [xs]
    if isinstance(xs, (str, bytes, dict, set, frozenset)) or not isinstance(xs, Iterable):
        raise TypeError(f"{what} needs a Value or a sequence of Values, got "
                        f"{type(xs).__name__}: {short(xs)}")
    out = list(xs)
    for i, v in enumerate(out):
        if not isinstance(v, Value):
            raise TypeError(f"{what}: entry {i} must be a Value, got {type(v).__name__}: "
                            f"{short(v)}")
    if not out and not allow_empty:
        raise ValueError(f"{what} needs at least one Value, got an empty sequence")
    return out


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
                        f"{type(x).__name__}: {short(x)}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {expected}, got {v!r}: a non-finite {name} makes "
                         "every number it touches inf or nan")
    if v < lo or (lo_open and v == lo) or v > hi or (hi_open and v == hi):
        raise ValueError(f"{name} must be {expected}, got {v!r}")
    return v
