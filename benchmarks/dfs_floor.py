"""A second reference for the benchmarks: the plainest fast design with micrograd's semantics.

Slots, each node's parents and local derivatives computed in the forward pass (no closures, so
no reference cycles), one n-ary sum per neuron (the node layout of tape_floor.py), and
backward() from any node: an iterative depth-first sort from that node (interior nodes zeroed),
then one reversed loop doing parent.grad += local * grad. No
checks, no teaching hooks: it measures what such a design costs, next to the global-tape floor
(tape_floor.py, which skips the sort) and the engine (which adds its guarantees).
"""
from __future__ import annotations

import random


class DV:
    __slots__ = ("data", "grad", "_a", "_b", "_da", "_db")

    def __init__(self, data: float):
        self.data, self.grad = float(data), 0.0
        self._a = self._b = self._da = self._db = None


_new = object.__new__


def _node(data, a, b, da, db) -> DV:
    v = _new(DV)
    v.data, v.grad, v._a, v._b, v._da, v._db = data, 0.0, a, b, da, db
    return v


def mul(a: DV, b: DV) -> DV:
    x, y = a.data, b.data
    return _node(x * y, a, b, y, x)


def scale(a: DV, k: float) -> DV:
    return _node(a.data * k, a, None, k, None)


def shift(a: DV, k: float) -> DV:
    return _node(a.data + k, a, None, 1.0, None)


def relu(a: DV) -> DV:
    x = a.data
    return _node(x if x > 0.0 else 0.0, a, None, 1.0 if x > 0.0 else 0.0, None)


def add(a: DV, b: DV) -> DV:
    return _node(a.data + b.data, a, b, 1.0, 1.0)


def total(xs: list) -> DV:
    """One n-ary sum node: parents as a tuple in _a, _b marks it (True)."""
    return _node(sum(x.data for x in xs), tuple(xs), True, None, None)


def backward(root: DV) -> None:
    """From any node, as micrograd: sort what is below it depth-first (iteratively, a None on
    the stack marking where a node's inputs are done), then one reversed loop."""
    order: list = []
    seen: set = set()
    stack: list = [root]
    mark, push, pop, emit = seen.add, stack.append, stack.pop, order.append
    while stack:
        v = pop()
        if v is None:
            emit(pop())
            continue
        if v in seen:
            continue
        mark(v)
        push(v)
        push(None)
        a, b = v._a, v._b
        if a is None:
            continue
        if b is True:
            for p in a:
                if p not in seen:
                    push(p)
        else:
            if a not in seen:
                push(a)
            if b is not None and b not in seen:
                push(b)
    for v in order:
        v.grad = 0.0 if v._a is not None else v.grad
    root.grad = 1.0
    for v in reversed(order):
        g, a, b = v.grad, v._a, v._b
        if a is None:
            continue
        if b is None:
            a.grad += v._da * g
        elif b is True:
            for p in a:
                p.grad += g
        else:
            a.grad += v._da * g
            b.grad += v._db * g


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
