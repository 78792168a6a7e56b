"""Loss functions built from engine operations, so their gradients come from backward.

Each loss takes model outputs (Values or numbers) and targets (plain numbers) and returns one
Value. The ones that involve exp are written to be numerically stable: a shift by the largest
*data* (a constant: the gradient of log-sum-exp does not change when a constant is subtracted
from every logit) and a branch on the sign of a logit, so logits of 1000 neither overflow nor
lose their gradient.
"""
from __future__ import annotations

import numbers
from typing import Sequence, Union

from .checks import hyperparameter
from .engine import Value

__all__ = ["mse", "hinge", "binary_cross_entropy", "softmax", "log_softmax", "cross_entropy",
           "l2", "REDUCTIONS"]

Scalar = Union[Value, float, int]
REDUCTIONS = ("mean", "sum", "none")


def _v(x, what: str) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{what} must be a Value or a real number, got {type(x).__name__}: {x!r}")
    return Value.constant(x)


def _seq(x, what: str) -> list:
    """A scalar becomes a batch of one; a sequence is listed."""
    if isinstance(x, (Value, numbers.Real)):
        return [x]
    try:
        return list(x)
    except TypeError:
        raise TypeError(f"{what} must be a number, a Value or a sequence of them, "
                        f"got {type(x).__name__}: {x!r}") from None


def _pair(pred, target, name: str) -> tuple[list, list]:
    p, t = _seq(pred, f"{name}: predictions"), _seq(target, f"{name}: targets")
    if len(p) != len(t):
        raise ValueError(f"{name}: {len(p)} predictions but {len(t)} targets")
    if not p:
        raise ValueError(f"{name}: needs at least one prediction, got an empty batch")
    return p, t


def _sum(terms: list) -> Value:
    return terms[0] if len(terms) == 1 else Value.sum(terms)


def _reduce(terms: list, reduction: str, name: str):
    if reduction == "mean":
        s = _sum(terms)
        return s if len(terms) == 1 else s * (1.0 / len(terms))
    if reduction == "sum":
        return _sum(terms)
    if reduction == "none":
        return terms
    raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _number(t, what: str) -> float:
    if isinstance(t, Value):
        return t.data
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {type(t).__name__}: {t!r}")
    return float(t)


def mse(pred, target, reduction: str = "mean"):
    """Mean squared error, mean over the batch of (pred - target)**2.

    Targets may be numbers or Values (then the gradient flows into them too).
    reduction='sum' adds instead of averaging, 'none' returns the list of per-sample terms.
    """
    p, t = _pair(pred, target, "mse")
    terms = []
    for i, (pi, ti) in enumerate(zip(p, t)):
        d = _v(pi, f"mse: prediction {i}") - _v(ti, f"mse: target {i}")
        terms.append(d * d)
    return _reduce(terms, reduction, "mse")


def hinge(scores, labels, reduction: str = "mean"):
    """The SVM max-margin loss: mean of relu(1 - y * score) with labels y = -1 or +1.

    Labels of 0/1 are an error, not silently wrong: convert them with 2*y - 1.
    """
    s, y = _pair(scores, labels, "hinge")
    terms = []
    for i, (si, yi) in enumerate(zip(s, y)):
        yf = _number(yi, f"hinge: label {i}")
        if yf not in (-1.0, 1.0):
            raise ValueError(f"hinge: labels must be -1 or +1, got {yi!r} at position {i} "
                             "(for 0/1 labels use 2*y - 1)")
        terms.append((1.0 - yf * _v(si, f"hinge: score {i}")).relu())
    return _reduce(terms, reduction, "hinge")


def _softplus(z: Value) -> Value:
    """log(1 + exp(z)) without overflow: the branch keeps exp's argument <= 0.

    Both branches are the same smooth function, so the gradient is right everywhere,
    including z = 0 (a relu/abs form would give a wrong one-sided slope there).
    """
    if z.data >= 0.0:
        return z + (1.0 + (-z).exp()).log()
    return (1.0 + z.exp()).log()


def binary_cross_entropy(logits, targets, reduction: str = "mean"):
    """Binary cross-entropy from logits (PyTorch's BCEWithLogitsLoss), targets in [0, 1].

    Per sample: softplus(z) - y*z = -[y log σ(z) + (1-y) log(1 - σ(z))], computed without
    forming σ(z), so a logit of ±1000 gives a finite loss and the exact gradient σ(z) - y.
    """
    z, y = _pair(logits, targets, "binary_cross_entropy")
    terms = []
    for i, (zi, yi) in enumerate(zip(z, y)):
        yf = _number(yi, f"binary_cross_entropy: target {i}")
        if not 0.0 <= yf <= 1.0:
            raise ValueError(f"binary_cross_entropy: targets must be in [0, 1], got {yi!r} at "
                             f"position {i} (for -1/+1 labels use (y + 1) / 2)")
        zv = _v(zi, f"binary_cross_entropy: logit {i}")
        terms.append(_softplus(zv) - yf * zv if yf else _softplus(zv))
    return _reduce(terms, reduction, "binary_cross_entropy")


def _logits(logits, name: str) -> list:
    z = _seq(logits, f"{name}: logits")
    if not z:
        raise ValueError(f"{name}: needs at least one logit, got none")
    return [_v(x, f"{name}: logit {i}") for i, x in enumerate(z)]


def _shifted_logsumexp(z: list) -> tuple[float, Value]:
    """(m, log Σ exp(z_j - m)) with m the largest data: every exp argument is <= 0."""
    m = max(v.data for v in z)
    return m, _sum([(v - m).exp() for v in z]).log()


def softmax(logits) -> list:
    """exp(z_i) / Σ_j exp(z_j) for one list of logits, shifted by the max so it never overflows."""
    z = _logits(logits, "softmax")
    m = max(v.data for v in z)
    e = [(v - m).exp() for v in z]
    s = _sum(e)
    return [ei / s for ei in e]


def log_softmax(logits) -> list:
    """z_i - log Σ_j exp(z_j), stable: (z_i - m) - log Σ_j exp(z_j - m)."""
    z = _logits(logits, "log_softmax")
    m, lse = _shifted_logsumexp(z)
    return [(v - m) - lse for v in z]


def _class_index(t, k: int, where: str) -> int:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"cross_entropy: target{where} must be a class index (int), "
                        f"got {type(t).__name__}: {t!r}")
    if not 0 <= t < k:
        raise ValueError(f"cross_entropy: target {t!r}{where} is not a class index in "
                         f"0..{k - 1} ({k} logits)")
    return int(t)


def _one_ce(logits, t, where: str) -> Value:
    z = _logits(logits, "cross_entropy")
    t = _class_index(t, len(z), where)
    m, lse = _shifted_logsumexp(z)
    return lse - (z[t] - m)  # = logsumexp(z) - z_t


def cross_entropy(logits, target, reduction: str = "mean"):
    """Softmax cross-entropy from logits and a class index (PyTorch's F.cross_entropy).

    One sample: `cross_entropy([z0, z1, z2], 2)`. A batch: a list of logit lists and a list of
    indices, averaged (reduction='sum' adds, 'none' returns the per-sample losses).
    """
    z = _seq(logits, "cross_entropy: logits")
    if not z:
        raise ValueError("cross_entropy: needs logits, got none")
    if isinstance(z[0], (Value, numbers.Real)):  # one sample
        try:
            n_targets = None if isinstance(target, (str, bytes)) else len(target)
        except TypeError:  # a number (or a 0-d array): one sample's class index
            n_targets = None
        if n_targets is not None:
            raise TypeError(f"cross_entropy: the logits are one flat list of {len(z)} numbers "
                            f"(one sample) but the target is a sequence of {n_targets}; for a "
                            f"batch pass one list of logits per sample (a model with one output "
                            f"per class), for one sample a single class index")
        return _reduce([_one_ce(z, target, "")], reduction, "cross_entropy")
    t = _seq(target, "cross_entropy: targets")
    if len(t) != len(z):
        raise ValueError(f"cross_entropy: {len(z)} rows of logits but {len(t)} targets")
    terms = [_one_ce(zi, ti, f" at position {i}") for i, (zi, ti) in enumerate(zip(z, t))]
    return _reduce(terms, reduction, "cross_entropy")


def l2(params: Sequence[Value], alpha: float = 1.0) -> Value:
    """L2 regularisation: alpha * Σ p², added to a loss to keep weights small.

    Pass `model.parameters()`; micrograd's moons demo uses alpha = 1e-4.
    """
    ps = list(params)
    alpha = hyperparameter(alpha, "l2: alpha")
    if not ps:
        raise ValueError("l2: needs at least one parameter, got an empty list")
    for i, p in enumerate(ps):
        if not isinstance(p, Value):
            raise TypeError(f"l2: parameter {i} must be a Value, got {type(p).__name__}: {p!r}")
    return _sum([p * p for p in ps]) * alpha
