"""A second reference for the benchmarks: the plainest fast design with micrograd's semantics.

Slots, each node's parents and local derivatives computed in the forward pass (no closures, so
no reference cycles), one n-ary sum per neuron (the node layout of tape_floor.py), and
backward() from any node: an iterative depth-first sort from that node (interior nodes zeroed),
then one reversed loop doing parent.grad += local * grad. No checks, no teaching hooks: it
measures what such a design costs, next to the global-tape floor (tape_floor.py, which skips
the sort) and the engine (which adds its guarantees). The MLP and the step are tape_floor's,
run on these nodes; the node functions are written again only because tape_floor's also
append every node to its tape.
"""
from __future__ import annotations

import sys

import tape_floor


class TV:
    __slots__ = ("data", "grad", "_a", "_b", "_da", "_db")

    def __init__(self, data: float):
        self.data, self.grad = float(data), 0.0
        self._a = self._b = self._da = self._db = None


_new = object.__new__


def _node(data, a, b, da, db) -> TV:
    v = _new(TV)
    v.data, v.grad, v._a, v._b, v._da, v._db = data, 0.0, a, b, da, db
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


def MLP(nin: int, nouts: list, seed: int = 1337) -> tape_floor.MLP:
    """micrograd's MLP (tape_floor's, the same weights for a seed) on these nodes."""
    return tape_floor.MLP(nin, nouts, seed, ops=sys.modules[__name__])


step = tape_floor.step  # micrograd's demo step, run on the model's nodes: these
