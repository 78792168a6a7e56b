"""Optimizers that update Values in place from their .grad, with PyTorch's update rules.

Usage is PyTorch's loop: `opt.zero_grad(); loss.backward(); opt.step()`. A learning rate may
be a number or a callable of the step number (0 for the first step), e.g. micrograd's decay
`lambda k: 1.0 - 0.9 * k / 100`.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Callable, Iterable, Union

import numpy as np

from .checks import hyperparameter
from .engine import Value

__all__ = ["Optimizer", "SGD", "Adam"]

LR = Union[float, Callable[[int], float]]


def _grads(params: list) -> list:
    """Every parameter's gradient as a float, checked before anything is updated: a step that
    raises changes no parameter and no optimizer state."""
    out = []
    for i, p in enumerate(params):
        g = p.grad
        if type(g) is not float:  # the common case is a float: checked in bulk below
            if isinstance(g, bool) or not isinstance(g, numbers.Real):
                what = ("None: run backward() before step(), or set it to 0.0" if g is None
                        else f"{type(g).__name__}: {g!r}, not a real number")
                raise TypeError(f"params[{i}] ({p!r}) has .grad {what}; the step changed "
                                "nothing")
            g = float(g)
        out.append(g)
    if not math.isfinite(sum(out)):  # a sum of finite numbers can overflow: then look closer
        for i, g in enumerate(out):
            if not math.isfinite(g):
                raise _not_finite(params, i, ".grad", g)
    return out


def _not_finite(params: list, i: int, what: str, x: float,
                shown: str = "") -> FloatingPointError:
    """The error for params[i]'s non-finite gradient (what == ".grad") or new value (what:
    "" for the parameter itself, or which state, e.g. "'s momentum buffer"). shown: how to
    show the parameter (default its repr)."""
    shown = shown or repr(params[i])
    if what == ".grad":
        return FloatingPointError(f"params[{i}] ({shown}) has .grad {x!r}; the step "
                                  "changed nothing (a non-finite gradient would make the "
                                  "parameter inf or nan: lower the learning rate or check the "
                                  "loss)")
    return FloatingPointError(f"the step would make params[{i}]{what} ({shown}) {x!r}; "
                              "it changed nothing: lower the learning rate")


def _finite(new: list, params: list, what: str = "") -> None:
    """Refuse an update that overflows, before it is applied."""
    if math.isfinite(sum(new)):
        return
    for i, x in enumerate(new):
        if not math.isfinite(x):
            raise _not_finite(params, i, what, x)


def _finite_array(arr: np.ndarray, params: list, what: str, P: np.ndarray,
                  G: np.ndarray) -> None:
    """_grads' and _finite's test on an array: the first entry that is not finite, named.
    The parameter is shown with the numbers step_array was given (P[i] as its data, G[i] as
    its .grad), not its Value's: those may be a step or more old (a compiled loop keeps the
    parameters in an array), and the Value's .grad is the previous step's. They are what
    the Value holds once a compiled step that failed has written them back."""
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:  # (all finite: fine, even when their sum overflows)
        i = int(bad[0])
        lab = f", label={params[i].label!r}" if params[i].label else ""
        shown = f"Value(data={float(P[i])!r}, grad={float(G[i])!r}{lab})"
        raise _not_finite(params, i, what, float(arr[i]), shown)


def _check_arrays(opt: "Optimizer", P, G) -> None:
    """P and G must be what step_array is defined on: 1-D float64 arrays with one entry per
    parameter. Anything else is refused before any state changes: NumPy would broadcast a
    (n, 1) gradient against (n,) values into an (n, n) update and keep it as the momentum
    buffer, or a length-1 array against every parameter, without a word."""
    n = len(opt.params)
    if (type(P) is np.ndarray and type(G) is np.ndarray and P.dtype == np.float64
            and G.dtype == np.float64 and P.shape == (n,) and G.shape == (n,)):
        return  # (the common case, checked at every compiled step, in one test)
    who = f"{type(opt).__name__}.step_array"
    for name, a in (("P", P), ("G", G)):
        if not isinstance(a, np.ndarray) or a.dtype != np.float64:
            got = (f"an array of dtype {a.dtype}" if isinstance(a, np.ndarray)
                   else f"{type(a).__name__}")
            raise TypeError(f"{who}: {name} must be a float64 NumPy array of shape ({n},), "
                            f"got {got}: write np.asarray({name}, dtype=float); the step "
                            f"changed nothing")
    if P.shape != (n,) or G.shape != (n,):
        raise ValueError(f"{who}: P (the values) and G (the gradients) must both have shape "
                         f"({n},), one entry per parameter in optimizer.params order "
                         f"(a.reshape(-1) for {n} numbers in another shape); got P "
                         f"{P.shape} and G {G.shape}; the step changed nothing")


def _array_form(step_array):
    """step_array with its arguments checked (_check_arrays) and without NumPy's overflow
    warnings: an overflow is refused, by name, before anything changes (as step() refuses
    it), so the warning would only repeat the error."""
    @functools.wraps(step_array)
    def run(self, P: np.ndarray, G: np.ndarray) -> np.ndarray:
        _check_arrays(self, P, G)
        with np.errstate(all="ignore"):
            return step_array(self, P, G)
    return run


def _as_list(state):
    """Optimizer state kept as an array by step_array, back as floats for step()."""
    return state.tolist() if isinstance(state, np.ndarray) else state


class Optimizer:
    """Holds the parameters and the learning rate (fixed or scheduled); counts steps."""

    def __init__(self, params: Iterable[Value], lr: LR):
        if isinstance(params, Value):
            raise TypeError("params must be an iterable of Values (e.g. model.parameters()), "
                            "got a single Value: wrap it in a list")
        try:
            ps = list(params)
        except TypeError:
            raise TypeError(f"params must be an iterable of Values (e.g. model.parameters()), "
                            f"got {type(params).__name__}") from None
        if not ps:
            raise ValueError("params is empty: the optimizer has nothing to update")
        seen = set()
        for i, p in enumerate(ps):
            if not isinstance(p, Value):
                raise TypeError(f"params[{i}] must be a Value, got {type(p).__name__}: {p!r}")
            if not p.is_leaf or p.is_constant:  # as torch: only leaves can be optimised
                what = "a constant" if p.is_constant else f"computed by {p.op.name!r}"
                raise ValueError(f"params[{i}] is {what} ({p!r}), not a leaf: an optimizer "
                                 f"updates the leaves a graph is built from, such as "
                                 f"model.parameters()")
            if id(p) in seen:
                raise ValueError(f"params[{i}] appears twice: it would be updated twice per step")
            seen.add(id(p))
        self.params = ps
        if not callable(lr):
            lr = hyperparameter(lr, "lr")
        self.lr = lr
        self.steps = 0  # how many step() calls so far: the next step's number

    def current_lr(self) -> float:
        """The learning rate the next step() will use."""
        lr = self.lr
        if not callable(lr):
            return lr
        return hyperparameter(lr(self.steps), f"lr({self.steps}) (the schedule's value)")

    def zero_grad(self) -> None:
        """Zero every parameter's .grad (parameters are leaves: backward accumulates into them)."""
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        raise NotImplementedError

    def step_array(self, P: np.ndarray, G: np.ndarray) -> np.ndarray:
        """The same update on arrays: P (the parameters' values, in self.params order) and G
        (their gradients) in, the new values out; the Values themselves are not touched (a
        compiled training loop keeps its parameters in an array between steps and writes
        them into the Values when user code can look). Each element goes through the same
        IEEE operations as step(), so the numbers are step()'s; a step that raises changes
        nothing. P and G must be float64 arrays of shape (len(params),), checked before
        anything changes (NumPy would broadcast other shapes into a wrong update and keep it
        in the optimizer's state). Optimizers without an array form raise
        NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} has no array form of its step")

    def __repr__(self) -> str:
        lr = getattr(self.lr, "__name__", "schedule") if callable(self.lr) else self.lr
        return f"{type(self).__name__}({len(self.params)} parameters, lr={lr}, steps={self.steps})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum and weight decay (as torch.optim.SGD).

    g = grad + weight_decay * p; with momentum, buf = momentum * buf + g (buf = g on the first
    step) and g = buf; then p -= lr * g.
    """

    def __init__(self, params: Iterable[Value], lr: LR, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = hyperparameter(momentum, "momentum", 0.0, 1.0, hi_open=True)
        self.weight_decay = hyperparameter(weight_decay, "weight_decay")
        self._buf = None

    def step(self) -> None:
        """One update. Every gradient is checked, and every new value computed, before any
        parameter or momentum buffer changes: a step that raises changes nothing."""
        lr, mu, wd = self.current_lr(), self.momentum, self.weight_decay
        ps = self.params
        gs = _grads(ps)
        if wd:
            gs = [g + wd * p.data for g, p in zip(gs, ps)]
        buf = None
        if mu:
            buf = gs if self._buf is None else [mu * b + g for b, g in
                                                zip(_as_list(self._buf), gs)]
            _finite(buf, ps, "'s momentum buffer")
            gs = buf
        new = [p.data - lr * g for p, g in zip(ps, gs)]
        _finite(new, ps)
        for p, x in zip(ps, new):
            p.data = x
        if mu:
            self._buf = buf
        self.steps += 1

    @_array_form
    def step_array(self, P: np.ndarray, G: np.ndarray) -> np.ndarray:
        lr, mu, wd = self.current_lr(), self.momentum, self.weight_decay
        ps = self.params
        g = G + wd * P if wd else G
        buf = None
        if mu:
            buf = g.copy() if self._buf is None else mu * np.asarray(self._buf, dtype=float) + g
            g = buf
        new = P - lr * g
        if not np.isfinite(new.sum()):  # one test; then say which input made it
            _finite_array(G, ps, ".grad", P, G)
            if mu:
                _finite_array(buf, ps, "'s momentum buffer", P, G)
            _finite_array(new, ps, "", P, G)
        if mu:
            self._buf = buf
        self.steps += 1
        return new


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam (weight_decay adds wd * p to the gradient).

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;  p -= lr * m̂ / (sqrt(v̂) + eps)
    with m̂ = m / (1 - b1^t), v̂ = v / (1 - b2^t) and t the step count starting at 1.
    """

    def __init__(self, params: Iterable[Value], lr: LR = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        self.betas = (hyperparameter(b1, "betas[0]", 0.0, 1.0, hi_open=True),
                      hyperparameter(b2, "betas[1]", 0.0, 1.0, hi_open=True))
        self.eps = hyperparameter(eps, "eps")
        self.weight_decay = hyperparameter(weight_decay, "weight_decay")
        self._m = [0.0] * len(self.params)
        self._v = [0.0] * len(self.params)

    def step(self) -> None:
        """One update; as SGD.step, it checks everything first and changes nothing if it
        raises (no parameter, no moment, no step count)."""
        lr = self.current_lr()
        b1, b2 = self.betas
        eps, wd = self.eps, self.weight_decay
        ps = self.params
        gs = _grads(ps)
        if wd:
            gs = [g + wd * p.data for g, p in zip(gs, ps)]
        t = self.steps + 1
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        m = [b1 * mi + (1.0 - b1) * g for mi, g in zip(_as_list(self._m), gs)]
        v = [b2 * vi + (1.0 - b2) * g * g for vi, g in zip(_as_list(self._v), gs)]
        _finite(v, ps, "'s second moment")  # g*g can overflow where g did not
        sqrt = math.sqrt
        try:
            new = [p.data - lr * (mi / c1) / (sqrt(vi / c2) + eps) for p, mi, vi in zip(ps, m, v)]
        except ZeroDivisionError:  # eps = 0 and a gradient whose square underflows to 0
            raise FloatingPointError("Adam with eps=0 divided by a zero second moment; the step "
                                     "changed nothing: use eps > 0 (default 1e-8)") from None
        _finite(new, ps)
        for p, x in zip(ps, new):
            p.data = x
        self._m, self._v = m, v
        self.steps += 1

    @_array_form
    def step_array(self, P: np.ndarray, G: np.ndarray) -> np.ndarray:
        lr = self.current_lr()
        b1, b2 = self.betas
        eps, wd = self.eps, self.weight_decay
        ps = self.params
        _finite_array(G, ps, ".grad", P, G)
        g = G + wd * P if wd else G
        t = self.steps + 1
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        m = b1 * np.asarray(self._m, dtype=float) + (1.0 - b1) * g
        v = b2 * np.asarray(self._v, dtype=float) + (1.0 - b2) * g * g
        _finite_array(v, ps, "'s second moment", P, G)
        den = np.sqrt(v / c2) + eps
        if not den.all():
            raise FloatingPointError("Adam with eps=0 divided by a zero second moment; the step "
                                     "changed nothing: use eps > 0 (default 1e-8)")
        new = P - lr * (m / c1) / den
        _finite_array(new, ps, "", P, G)
        self._m, self._v = m, v
        self.steps += 1
        return new
