"""Scale of the teaching tools (issue 13 §5): mode_costs keeps memory linear in nodes plus
inputs, and stays exact when it takes the inputs in blocks."""
from __future__ import annotations

import random
import tracemalloc

import pytest

import tinygrad_scalar.teach.modes as modes
from tinygrad_scalar import Value, topological_order
from tinygrad_scalar.teach import mode_costs


def brute_force(outputs, inputs):
    """Per input, the edges p -> v with p in its forward cone and v reaching an output; per
    output, the edges with v in its reverse cone and p depending on an input: set by set."""
    order = []
    seen = set()
    for y in outputs:
        for v in topological_order(y):
            if v not in seen:
                seen.add(v)
                order.append(v)

    def cone_up(x):
        c = {x}
        for v in order:
            if any(p in c for p in v._prev):
                c.add(v)
        return c

    def cone_down(y):
        c = {y}
        for v in reversed(order):
            if v in c:
                c.update(v._prev)
        return c

    ups = [cone_up(x) for x in inputs]
    downs = [cone_down(y) for y in outputs]
    any_up = set().union(*ups)
    any_down = set().union(*downs)
    edges = [(p, v) for v in order for p in v._prev]
    fwd = [sum(1 for p, v in edges if p in u and v in any_down) for u in ups]
    rev = [sum(1 for p, v in edges if v in d and p in any_up) for d in downs]
    relevant = sum(1 for p, v in edges if p in any_up and v in any_down)
    return fwd, rev, len(edges), relevant


def random_graph(rng, n_in, n_ops):
    xs = [Value(rng.uniform(-1, 1), f"x{i}") for i in range(n_in)]
    pool = list(xs)
    for _ in range(n_ops):
        a, b = rng.choice(pool), rng.choice(pool)
        op = rng.choice(["+", "*", "tanh", "c"])
        v = a + b if op == "+" else a * b if op == "*" else a.tanh() if op == "tanh" else a * 2.0
        pool.append(v)
    outs = pool[-3:]
    return xs, outs


@pytest.mark.parametrize("budget", [1 << 26, 1 << 6])  # one block, and blocks of 64 inputs
@pytest.mark.parametrize("seed", range(4))
def test_mode_costs_equal_brute_force(monkeypatch, budget, seed):
    monkeypatch.setattr(modes, "_BIT_BUDGET", budget)
    rng = random.Random(seed)
    xs, outs = random_graph(rng, 150, 300)
    ins = xs[::2] + [xs[0]]  # a repeated input is its own sweep too
    t = mode_costs(outs, ins)
    fwd, rev, edges, relevant = brute_force(outs, ins)
    assert [s.multiply_adds for s in t.forward] == fwd
    assert [s.multiply_adds for s in t.reverse] == rev
    assert (t.edges, t.relevant_edges) == (edges, relevant)


def test_mode_costs_memory_is_linear_in_nodes_plus_inputs(monkeypatch):
    # issue 13: one bitmask over all inputs per node made a chain of sums quadratic
    monkeypatch.setattr(modes, "_BIT_BUDGET", 1 << 12)

    def peak(n):
        xs = [Value(float(i), f"x{i}") for i in range(n)]
        s = xs[0]
        for x in xs[1:]:
            s = s + x  # the k-th partial sum depends on k inputs
        tracemalloc.start()
        mode_costs(s, xs)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, big = peak(500), peak(2000)
    # linear: 4.0x (measured); one mask over all inputs per node: 5.1x here, 16x asymptotically
    assert big < 4.6 * small
