"""A reference floor for bench.py: the smallest fast global-tape engine for the moons step.

Slots, local derivatives computed in the forward pass, one n-ary sum per neuron (as ours), and
a module-level list that every operation appends its node to, so backward is one reversed loop
over the list with no graph walk at all. It has none of the engine's guarantees (backward only
from the last node made, one graph at a time, no checks): it measures what the walk costs.
"""
from __future__ import annotations

import random
import sys

TAPE: list = []


class TV:
    __slots__ = ("data", "grad", "_a", "_b", "_da", "_db")

    def __init__(self, data: float):
        self.data, self.grad = float(data), 0.0
        self._a = self._b = self._da = self._db = None


_new = object.__new__
_push = TAPE.append


def _node(data, a, b, da, db):
    v = _new(TV)
    v.data, v.grad, v._a, v._b, v._da, v._db = data, 0.0, a, b, da, db
    _push(v)
    return v


def mul(a: TV, b: TV) -> TV:
    x, y = a.data, b.data
    return _node(x * y, a, b, y, x)


def mulk(a: TV, k: float) -> TV:
    return _node(a.data * k, a, None, k, None)


def addk(a: TV, k: float) -> TV:
    return _node(a.data + k, a, None, 1.0, None)


def relu(a: TV) -> TV:
    x = a.data
    return _node(x if x > 0.0 else 0.0, a, None, 1.0 if x > 0.0 else 0.0, None)


def add(a: TV, b: TV) -> TV:
    return _node(a.data + b.data, a, b, 1.0, 1.0)


def total(xs: list) -> TV:
    """One n-ary sum node: parents as a tuple in _a, _b marks it (True)."""
    return _node(sum(x.data for x in xs), tuple(xs), True, None, None)


def backward(root: TV) -> None:
    for v in TAPE:
        v.grad = 0.0
    root.grad = 1.0
    for v in reversed(TAPE):
        g, a, b = v.grad, v._a, v._b
        if b is None:
            a.grad += v._da * g
        elif b is True:
            for p in a:
                p.grad += g
        else:
            a.grad += v._da * g
            b.grad += v._db * g
    TAPE.clear()


class MLP:
    """micrograd's MLP over the node functions of `ops` (this module, or dfs_floor: the same
    node layout and functions, and its own backward)."""

    def __init__(self, nin: int, nouts: list, seed: int = 1337, ops=None):
        self.ops = ops = sys.modules[__name__] if ops is None else ops
        rng = random.Random(seed)
        sizes = [nin] + nouts
        self.layers = [[([ops.TV(rng.uniform(-1, 1)) for _ in range(sizes[i])], ops.TV(0.0))
                        for _ in range(sizes[i + 1])] for i in range(len(nouts))]

    def parameters(self) -> list:
        return [p for layer in self.layers for w, b in layer for p in w + [b]]

    def __call__(self, x: list):
        mul, relu, total = self.ops.mul, self.ops.relu, self.ops.total
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            out = []
            for w, b in layer:
                s = total([mul(wi, xi) for wi, xi in zip(w, x)] + [b])
                out.append(relu(s) if i < last else s)
            x = out
        return x[0]


def step(model: MLP, X, y, lr: float, alpha: float = 1e-4) -> float:
    """micrograd's demo step on model.ops: hinge loss + alpha * L2, backward, SGD."""
    o = model.ops
    scores = [model([o.TV(a), o.TV(b)]) for a, b in X]
    losses = [o.relu(o.addk(o.mulk(s, -yi), 1.0)) for s, yi in zip(scores, y)]
    params = model.parameters()
    loss = o.add(o.mulk(o.total(losses), 1.0 / len(losses)),
                 o.mulk(o.total([o.mul(p, p) for p in params]), alpha))
    for p in params:
        p.grad = 0.0
    o.backward(loss)
    for p in params:
        p.data -= lr * p.grad
    return loss.data
