"""NumPy kernels of the built-in operations (value, local derivatives, domain suspects)."""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from .. import engine

# ---------------------------------------------------------------------------------------------
# Kernels: each built-in operation as vectorised value and local-derivative rules.
#
# value(M, args) -> array; local(M, args, out) -> one entry per input: an array, or ONE / MINUS
# (the engine's constant local 1.0 / -1.0, whose product with a gradient is exactly g / -g).
# suspect(args) -> mask of elements where the engine's domain check might raise (the engine's
# own check then decides, element by element). M holds exp, log, sin, cos, tanh: NumPy's, or
# Python's math applied per element (exact mode).

ONE, MINUS = "one", "minus"


def _per_element(fn: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    def apply(x):
        x = np.asarray(x, dtype=float)
        flat = np.fromiter(map(fn, x.ravel().tolist()), dtype=float, count=x.size)
        return flat.reshape(x.shape)
    apply.__name__ = getattr(fn, "__name__", "per_element")
    return apply


class Math:
    """The transcendental functions kernels call: NumPy's ufuncs, or math's per element."""

    def __init__(self, exact: bool):
        if exact:
            self.exp, self.log = _per_element(math.exp), _per_element(math.log)
            self.sin, self.cos = _per_element(math.sin), _per_element(math.cos)
            self.tanh = _per_element(math.tanh)
        else:
            self.exp, self.log, self.sin, self.cos, self.tanh = (
                np.exp, np.log, np.sin, np.cos, np.tanh)


class Kernel:
    __slots__ = ("value", "local", "suspect", "can_overflow", "ufunc")

    def __init__(self, value, local, suspect=None, can_overflow=True, ufunc=None):
        self.value, self.local, self.suspect, self.can_overflow = (
            value, local, suspect, can_overflow)
        self.ufunc = ufunc  # the value is this ufunc of the inputs: written straight into place


def _sign(a):
    return np.where(a > 0.0, 1.0, np.where(a < 0.0, -1.0, 0.0))


def _sigmoid_value(M, args):
    a = args[0]
    e = M.exp(-np.abs(a))  # exp(-x) for x >= 0 and exp(x) for x < 0, as engine._sigmoid
    return np.where(a >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _pow_local(M, args, out):
    a, b = args
    zero_small = (a == 0.0) & (b < 1.0)
    safe_a = np.where(zero_small, 1.0, a)
    dbase = np.where(zero_small, np.where(b == 0.0, 0.0, math.inf),
                     b * np.power(safe_a, b - 1.0))
    pos = a > 0.0
    dexp = np.where(pos, out * np.log(np.where(pos, a, 1.0)),
                    np.where(a == 0.0, 0.0, math.nan))
    return dbase, dexp


def _pow_suspect(args):
    a, b = args
    return ((a == 0.0) & (b < 0.0)) | ((a < 0.0) & ~(np.floor(b) == b))


KERNELS: dict = {
    engine.ADD: Kernel(lambda M, x: x[0] + x[1], lambda M, x, out: (ONE, ONE),
                        ufunc=np.add),
    engine.SUB: Kernel(lambda M, x: x[0] - x[1], lambda M, x, out: (ONE, MINUS),
                        ufunc=np.subtract),
    engine.MUL: Kernel(lambda M, x: x[0] * x[1], lambda M, x, out: (x[1], x[0]),
                        ufunc=np.multiply),
    engine.DIV: Kernel(lambda M, x: x[0] / x[1],
                        lambda M, x, out: (1.0 / x[1], -out / x[1]),
                        lambda x: x[1] == 0.0, ufunc=np.divide),
    engine.NEG: Kernel(lambda M, x: -x[0], lambda M, x, out: (MINUS,), can_overflow=False),
    engine.ABS: Kernel(lambda M, x: np.abs(x[0]), lambda M, x, out: (_sign(x[0]),),
                        can_overflow=False),
    engine.RELU: Kernel(lambda M, x: np.where(x[0] <= 0.0, 0.0, x[0]),
                         lambda M, x, out: (np.where(x[0] > 0.0, 1.0, 0.0),),
                         can_overflow=False),
    engine.TANH: Kernel(lambda M, x: M.tanh(x[0]), lambda M, x, out: (1.0 - out * out,),
                         can_overflow=False),
    engine.SIGMOID: Kernel(_sigmoid_value, lambda M, x, out: (out * (1.0 - out),),
                            can_overflow=False),
    engine.EXP: Kernel(lambda M, x: M.exp(x[0]), lambda M, x, out: (out,)),
    engine.LOG: Kernel(lambda M, x: M.log(x[0]), lambda M, x, out: (1.0 / x[0],),
                        lambda x: x[0] <= 0.0, can_overflow=False),
    engine.SQRT: Kernel(lambda M, x: np.sqrt(x[0]),
                         lambda M, x, out: (np.where(out != 0.0, 0.5 / out, math.inf),),
                         lambda x: x[0] < 0.0, can_overflow=False),
    engine.SIN: Kernel(lambda M, x: M.sin(x[0]), lambda M, x, out: (M.cos(x[0]),),
                        lambda x: ~np.isfinite(x[0]), can_overflow=False),
    engine.COS: Kernel(lambda M, x: M.cos(x[0]), lambda M, x, out: (-M.sin(x[0]),),
                        lambda x: ~np.isfinite(x[0]), can_overflow=False),
}
# pow in fast mode only: in exact mode it runs the engine's own rules per element (Python's
# float ** has its own special cases), as custom operations do.
POW_FAST = Kernel(lambda M, x: np.power(x[0], x[1]), _pow_local, _pow_suspect)


def seq_sum(args: list, out: np.ndarray) -> np.ndarray:
    """((0.0 + x0) + x1) + ...: Python's sum(xs, 0.0) before 3.12, element by element."""
    np.add(args[0], 0.0, out=out)
    for a in args[1:]:
        np.add(out, a, out=out)
    return out


def neumaier_sum(args: list, out: np.ndarray) -> np.ndarray:
    """sum(xs, 0.0) as Python 3.12+ computes it: Neumaier's compensated summation."""
    f = np.zeros(out.shape)
    c = np.zeros(out.shape)
    for x in args:
        t = f + x
        big = np.abs(f) >= np.abs(x)
        c += np.where(big, (f - t) + x, (x - t) + f)
        f = t
    fix = (c != 0.0) & np.isfinite(c)
    np.copyto(out, np.where(fix, f + c, f))
    return out


def probe_sum_mode() -> Optional[Callable]:
    """The vectorised sum that reproduces engine._sum_f (Python's own sum) on tricky inputs,
    or None (then sums run the engine's rule per element: still exact, slower)."""
    probes = [[0.1] * 10, [1.0, 1e100, 1.0, -1e100], [1e308, 1e308, -1e308], [-0.0, -0.0],
              [1e16, 1.0, 1.0, 1.0, -1e16], [math.inf, 1.0], [math.nan, 2.0], [3.0],
              [1.0, -1.0, 1e-20], [0.7, 0.1, 0.2, 1e-17, -1.0], [-math.inf, math.inf]]
    with np.errstate(all="ignore"):
        for fn in (seq_sum, neumaier_sum):
            ok = True
            for p in probes:
                want = engine._sum_f(*p)
                got = float(fn([np.array([x]) for x in p], np.empty(1))[0])
                if not (got == want or (got != got and want != want)) or \
                        math.copysign(1.0, got) != math.copysign(1.0, want):
                    ok = False
                    break
            if ok:
                return fn
    return None


SUM_KERNEL = probe_sum_mode()
FSUM_ABOVE = 64  # engine._sum_f switches to math.fsum for more inputs than this


