"""The one per-element fallback, and the engine's own error for a failing element.

An operation without a vector form (a custom operation from `custom.define_op`) runs its scalar
rules from the op table (check, f, df) element by element; both backends use this. When any
element fails, or a vectorised call reports a domain error or an overflow, the element is re-run
through the engine itself and the engine's exception is raised with the place added
("[tape node %7, batch index 2]"), so the replay's errors are the engine's errors.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional

import numpy as np

from ..engine import Op

__all__ = ["engine_error", "per_element", "raise_first"]


def engine_error(op: Op, xs: tuple) -> Optional[Exception]:
    """The exception the engine raises for op(*xs) with recording on (check, f, df and the
    overflow test), or None when it accepts the inputs."""
    return op.failure(*xs)


def _scalar_fails(op: Op, xs: tuple) -> bool:
    try:
        if op.check is not None:
            op.check(*xs)
        out = float(op.f(*xs))
        op.df(*xs, out)
    except Exception:  # whatever the operation raises: the engine then says what it is
        return True
    return not math.isfinite(out) and all(math.isfinite(x) for x in xs)


def _raise(op: Op, xs: tuple, where: str):
    err = engine_error(op, xs)
    if err is None:
        raise RuntimeError(f"replay of {op.name}{xs!r} [{where}] failed where the engine "
                           "succeeds: please report this as a bug")
    try:
        new = type(err)(f"{err} [{where}]")
    except Exception:
        raise err from None
    raise new from None


def per_element(op: Op, arrays: list, where: Callable[[tuple, int], str]):
    """(value, local derivatives) of op over broadcast arrays, element by element with the
    op's scalar rules; a failing element raises the engine's error at where(shape, e)."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    cols = [np.broadcast_to(a, shape).ravel().tolist() for a in arrays]
    n = len(cols[0])
    out = np.empty(n)
    locs = [np.empty(n) for _ in arrays]
    check, f, df = op.check, op.f, op.df
    for e, xs in enumerate(zip(*cols)):
        try:
            if check is not None:
                check(*xs)
            o = float(f(*xs))
            ds = df(*xs, o)
            if not math.isfinite(o) and all(math.isfinite(x) for x in xs):
                raise ArithmeticError
        except Exception:  # the engine names it, below
            _raise(op, xs, where(shape, e))
        out[e] = o
        for j, d in enumerate(ds):
            locs[j][e] = float(d)
    return out.reshape(shape), [loc.reshape(shape) for loc in locs]


def raise_first(op: Op, arrays: list, candidates: Optional[Iterable[int]],
                where: Callable[[tuple, int], str]) -> None:
    """Raise the engine's error for the first failing element among `candidates` (flat
    indices into the broadcast arrays; None: all of them). Returns when none fails."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    flat = [np.broadcast_to(a, shape).ravel() for a in arrays]
    for e in (range(int(np.prod(shape))) if candidates is None else candidates):
        xs = tuple(float(a[e]) for a in flat)
        if _scalar_fails(op, xs):
            _raise(op, xs, where(shape, e))
