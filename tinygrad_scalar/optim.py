"""Optimizers that update Values in place from their .grad, with PyTorch's update rules.

Usage is PyTorch's loop: `opt.zero_grad(); loss.backward(); opt.step()`. A learning rate may
be a number or a callable of the step number (0 for the first step), e.g. micrograd's decay
`lambda k: 1.0 - 0.9 * k / 100`.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Iterable, Union

from .engine import Value

__all__ = ["Optimizer", "SGD", "Adam"]

LR = Union[float, Callable[[int], float]]


def _real(x, what: str, lo: float = 0.0, hi: float = math.inf, hi_open: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {type(x).__name__}: {x!r}")
    x = float(x)
    if not (lo <= x and (x < hi if hi_open else x <= hi)):
        bound = f"[{lo}, {hi})" if hi_open else f"[{lo}, {hi}]"
        raise ValueError(f"{what} must be in {bound}, got {x!r}")
    return x


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
            lr = _real(lr, "lr")
        self.lr = lr
        self.steps = 0  # how many step() calls so far: the next step's number

    def current_lr(self) -> float:
        """The learning rate the next step() will use."""
        lr = self.lr
        if not callable(lr):
            return lr
        v = lr(self.steps)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise ValueError(f"lr({self.steps}) must return a finite number >= 0, got {v!r}")
        return float(v)

    def zero_grad(self) -> None:
        """Zero every parameter's .grad (parameters are leaves: backward accumulates into them)."""
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        raise NotImplementedError

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
        self.momentum = _real(momentum, "momentum", 0.0, 1.0, hi_open=True)
        self.weight_decay = _real(weight_decay, "weight_decay")
        self._buf = None

    def step(self) -> None:
        lr, mu, wd = self.current_lr(), self.momentum, self.weight_decay
        if mu == 0.0:
            if wd == 0.0:
                for p in self.params:
                    p.data -= lr * p.grad
            else:
                for p in self.params:
                    p.data -= lr * (p.grad + wd * p.data)
        else:
            first = self._buf is None
            if first:
                self._buf = [0.0] * len(self.params)
            buf = self._buf
            for i, p in enumerate(self.params):
                g = p.grad + wd * p.data if wd else p.grad
                b = g if first else mu * buf[i] + g
                buf[i] = b
                p.data -= lr * b
        self.steps += 1


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
        self.betas = (_real(b1, "betas[0]", 0.0, 1.0, hi_open=True),
                      _real(b2, "betas[1]", 0.0, 1.0, hi_open=True))
        self.eps = _real(eps, "eps")
        self.weight_decay = _real(weight_decay, "weight_decay")
        self._m = [0.0] * len(self.params)
        self._v = [0.0] * len(self.params)

    def step(self) -> None:
        lr = self.current_lr()
        b1, b2 = self.betas
        eps, wd = self.eps, self.weight_decay
        t = self.steps + 1
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        m, v = self._m, self._v
        sqrt = math.sqrt
        for i, p in enumerate(self.params):
            g = p.grad + wd * p.data if wd else p.grad
            mi = m[i] = b1 * m[i] + (1.0 - b1) * g
            vi = v[i] = b2 * v[i] + (1.0 - b2) * g * g
            p.data -= lr * (mi / c1) / (sqrt(vi / c2) + eps)
        self.steps += 1
