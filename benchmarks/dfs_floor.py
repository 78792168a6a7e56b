"""A second reference for the benchmarks: the plainest fast design with micrograd's semantics.

Slots, each node's parents and local derivatives computed in the forward pass (no closures, so
no reference cycles), one n-ary sum per neuron, and backward() from any node: an iterative
depth-first sort from that node, then one reversed loop doing parent.grad += local * grad. No
checks, no teaching hooks: it measures what such a design costs, next to the global-tape floor
(tape_floor.py, which skips the sort) and the engine (which adds its guarantees).
"""
from __future__ import annotations

import random


class DV:
    __slots__ = ("data", "grad", "_prev", "_local")

    def __init__(self, data: float):
        self.data, self.grad, self._prev, self._local = float(data), 0.0, (), ()


_new = object.__new__


def _node(data: float, prev: tuple, local: tuple) -> DV:
    v = _new(DV)
    v.data, v.grad, v._prev, v._local = data, 0.0, prev, local
    return v


def mul(a: DV, b: DV) -> DV:
    x, y = a.data, b.data
    return _node(x * y, (a, b), (y, x))


def scale(a: DV, k: float) -> DV:
    return _node(a.data * k, (a,), (k,))


def shift(a: DV, k: float) -> DV:
    return _node(a.data + k, (a,), (1.0,))


def relu(a: DV) -> DV:
    x = a.data
    return _node(x if x > 0.0 else 0.0, (a,), (1.0 if x > 0.0 else 0.0,))


def add(a: DV, b: DV) -> DV:
    return _node(a.data + b.data, (a, b), (1.0, 1.0))


def total(xs: list) -> DV:
    return _node(sum(x.data for x in xs), tuple(xs), (1.0,) * len(xs))


def backward(root: DV) -> None:
    """From any node, as micrograd: sort what is below it depth-first, then one reversed loop."""
    order, seen, stack = [], set(), [root]
    while stack:
        v = stack.pop()
        if v is None:
            order.append(stack.pop())
            continue
        if v in seen:
            continue
        seen.add(v)
        stack.append(v)
        stack.append(None)  # marks: v's parents are done when this comes back up
        stack.extend(p for p in v._prev if p not in seen)
    root.grad = 1.0
    for v in reversed(order):
        g = v.grad
        for p, d in zip(v._prev, v._local):
            p.grad += d * g


class MLP:
    def __init__(self, nin: int, nouts: list, seed: int = 1337):
        rng = random.Random(seed)
        sizes = [nin] + nouts
        self.layers = [[([DV(rng.uniform(-1, 1)) for _ in range(sizes[i])], DV(0.0))
                        for _ in range(sizes[i + 1])] for i in range(len(nouts))]

    def parameters(self) -> list:
        return [p for layer in self.layers for w, b in layer for p in w + [b]]

    def __call__(self, x: list) -> DV:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            out = []
            for w, b in layer:
                s = total([mul(wi, xi) for wi, xi in zip(w, x)] + [b])
                out.append(relu(s) if i < last else s)
            x = out
        return x[0]


def step(model: MLP, X, y, lr: float, alpha: float = 1e-4) -> float:
    """micrograd's demo step: hinge loss + alpha * L2, backward from the total, SGD."""
    scores = [model([DV(a), DV(b)]) for a, b in X]
    losses = [relu(shift(scale(s, -yi), 1.0)) for s, yi in zip(scores, y)]
    params = model.parameters()
    loss = add(scale(total(losses), 1.0 / len(losses)),
               scale(total([mul(p, p) for p in params]), alpha))
    for p in params:
        p.grad = 0.0
    backward(loss)
    for p in params:
        p.data -= lr * p.grad
    return loss.data
