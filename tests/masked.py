"""Small graphs where an edge passes nothing (relu's flat part, an input max did not pick) and an
inf or nan gradient reaches it from above: backward gives 0 below such an edge, not 0 * inf.

Each builder takes the leaves and a namespace of ops (`ENGINE` or `torch_ops(torch)`), so the
same graph is built in the engine and in PyTorch float64, the oracle: torch.relu and
torch.max(dim) mask the same way. `build(name)` gives (leaves by name, root) in the engine.
"""
from __future__ import annotations

from types import SimpleNamespace

from tinygrad_scalar import Value

ENGINE = SimpleNamespace(sqrt=lambda v: v.sqrt(), relu=lambda v: v.relu(),
                         max=lambda *vs: Value.max(vs))


def torch_ops(torch) -> SimpleNamespace:
    return SimpleNamespace(sqrt=torch.sqrt, relu=torch.relu,
                           max=lambda *ts: torch.stack(ts).max(dim=0).values)


def _max_sqrt(L, a, b):      # b not picked by max; sqrt'(0) = inf above it: b gets 0
    return L.sqrt(L.max(a, b))


def _relu_sqrt(L, a, b):     # relu(b) flat; sqrt'(0) = inf above it: b gets 0
    return L.sqrt(L.relu(b) + a)


def _max_twice(L, a, b):     # b also used outside max: 0 through max, 2 through 2 * b
    return L.sqrt(L.max(a, b)) + 2 * b


def _inf_below(L, a, b):     # the inf is below the mask: 0 * inf = nan, as every other edge
    return L.relu(L.sqrt(a) - 1) + b


def _two_masks(L, a, b):     # relu, then max not picking it, then sqrt at 0
    return L.sqrt(L.max(a, L.relu(b)) - a) + b * L.relu(b)


#: name -> (leaf values a, b; builder)
GRAPHS = {
    "max_sqrt": ((0.0, -1.0), _max_sqrt),
    "relu_sqrt": ((0.0, -1.0), _relu_sqrt),
    "max_twice": ((0.0, -1.0), _max_twice),
    "inf_below": ((0.0, 3.0), _inf_below),
    "two_masks": ((1.0, -1.0), _two_masks),
}


def build(name: str):
    """The graph in the engine: ({"a": a, "b": b}, root labelled y)."""
    (a0, b0), f = GRAPHS[name]
    a, b = Value(a0, "a"), Value(b0, "b")
    y = f(ENGINE, a, b)
    y.label = "y"
    return {"a": a, "b": b}, y


def torch_grads(name: str, torch) -> dict:
    """d y / d a and d y / d b from PyTorch float64."""
    (a0, b0), f = GRAPHS[name]
    a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    f(torch_ops(torch), a, b).backward()
    return {"a": a.grad.item(), "b": b.grad.item()}
