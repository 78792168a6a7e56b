"""Random computation graphs for the property tests, drawn from the engine's live operation table.

One generator for every test that needs "any graph": its operations are the entries of
`engine.OPS` (their arity from the entry, their domain from the entry's `check` and value rule),
so a new built-in operation is in every random-graph test the day it is added, with no list to
update. Only the oracles (PyTorch float64 lowerings, below) are written by hand, on purpose: an
oracle must not share code with what it checks, and a built-in without one fails loudly.

    from strategies import graphs, torch_lift
    @given(graphs(leaves=(1, 4), steps=(1, 12)))
    def test_something(g):                 # g: a RandomGraph
        xs = [Value(x) for x in g.xs]      # the point it was drawn at (inside every domain)
        (root,) = g.build(xs)              # the engine; g.build(ts, torch_lift(torch)) the oracle

With `smooth=True` (the default) every operation also sits at least `margin` away from a kink or
a domain edge of its own inputs (its derivative matches a central difference of step `margin`), so
finite differences of the whole graph are meaningful; `smooth=False` keeps kinks, for tests whose
oracle is exact (the static replay, jvp against vjp).
"""
from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

from hypothesis import strategies as st

from tinygrad_scalar.engine import OPS, Op, Value, apply, no_grad

# The operations the package itself defines, read from the live table when the tests start
# (tests/conftest.py imports this module first): operations a test defines with define_op are
# that test's business and stay out of the random graphs.
BUILTIN_OPS: tuple = tuple(sorted(OPS))


@dataclass(frozen=True)
class Const:
    """A Python number as an operand (it enters the graph as a constant, not a leaf)."""
    value: float

    def __repr__(self) -> str:
        return repr(self.value)


Arg = Union[int, Const]  # an earlier node (its index: leaves first, then steps) or a constant


@dataclass(frozen=True)
class Step:
    op: str
    args: tuple  # of Arg


@dataclass(frozen=True)
class RandomGraph:
    """A program over leaves: step k makes node len(xs) + k from earlier nodes and constants."""
    xs: tuple          # the leaf values the graph was drawn at (every step is in its domain there)
    steps: tuple       # of Step
    outputs: tuple     # node indices of the outputs

    def __repr__(self) -> str:
        def name(a):
            return repr(a) if isinstance(a, Const) else f"n{a}"
        lines = [", ".join(f"n{i}={x!r}" for i, x in enumerate(self.xs))]
        n = len(self.xs)
        lines += [f"n{n + k} = {s.op}({', '.join(map(name, s.args))})"
                  for k, s in enumerate(self.steps)]
        lines.append("outputs " + ", ".join(map(name, self.outputs)))
        return "RandomGraph<" + "; ".join(lines) + ">"

    @property
    def n_leaves(self) -> int:
        return len(self.xs)

    def nodes(self, leaves: Sequence, lift: Optional[Callable] = None) -> list:
        """Every node, leaves first: lift(op name, args) makes one (default: the engine)."""
        lift = lift or engine_lift
        if len(leaves) != len(self.xs):
            raise ValueError(f"this graph has {len(self.xs)} leaves, got {len(leaves)}")
        nodes = list(leaves)
        for s in self.steps:
            nodes.append(lift(s.op, [a.value if isinstance(a, Const) else nodes[a]
                                     for a in s.args]))
        return nodes

    def build(self, leaves: Sequence, lift: Optional[Callable] = None) -> list:
        """The outputs, building only the nodes they need (as a traced function would)."""
        lift = lift or engine_lift
        if len(leaves) != len(self.xs):
            raise ValueError(f"this graph has {len(self.xs)} leaves, got {len(leaves)}")
        n, done = len(self.xs), {}

        def get(a):
            if isinstance(a, Const):
                return a.value
            if a < n:
                return leaves[a]
            if a not in done:  # steps only refer to earlier nodes: the recursion depth is small
                s = self.steps[a - n]
                done[a] = lift(s.op, [get(b) for b in s.args])
            return done[a]
        return [get(o) for o in self.outputs]

    def function(self, lift: Optional[Callable] = None) -> Callable:
        """f(*leaves) -> the output (one) or the list of outputs, for the function transforms."""
        def f(*leaves):
            outs = self.build(leaves, lift)
            return outs[0] if len(outs) == 1 else outs
        return f

    def ops(self) -> set:
        return {s.op for s in self.steps}


def engine_lift(name: str, args: list) -> Value:
    """One engine node: the table's own entry, by `apply` (numbers become constants)."""
    return apply(OPS[name], *args)


def float_lift(name: str, args: list) -> float:
    """One step on plain floats, through the engine (its checks, its errors), unrecorded."""
    with no_grad():
        return apply(OPS[name], *args).data


# --- the PyTorch float64 oracle: written independently of the engine ---------------------------

def _torch_table(torch) -> dict:
    def total(*xs):
        return torch.stack([torch.as_tensor(x, dtype=torch.float64) for x in xs]).sum()

    def largest(*xs):  # the first of equal ones, as torch.argmax picks it
        s = torch.stack([torch.as_tensor(x, dtype=torch.float64) for x in xs])
        return s[torch.argmax(s)]
    return {
        "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
        "pow": operator.pow, "neg": operator.neg, "abs": torch.abs, "relu": torch.relu,
        "tanh": torch.tanh, "sigmoid": torch.sigmoid, "exp": torch.exp, "log": torch.log,
        "sqrt": torch.sqrt, "sin": torch.sin, "cos": torch.cos, "sum": total, "max": largest,
    }


def torch_lift(torch) -> Callable:
    """lift for RandomGraph.build on float64 tensors; a built-in without an oracle is an error."""
    table = _torch_table(torch)

    def lift(name: str, args: list):
        try:
            fn = table[name]
        except KeyError:
            raise KeyError(f"no PyTorch oracle for the operation {name!r}: add its torch float64 "
                           "lowering to _torch_table in tests/strategies.py") from None
        return fn(*args)
    return lift


# --- the generator ------------------------------------------------------------------------------

def _value(op: Op, xs: Sequence[float]) -> Optional[float]:
    """op at xs on floats, or None outside its domain (its check, its value rule, a non-finite)."""
    try:
        if op.check is not None:
            op.check(*xs)
        out = op.f(*xs)
    except (ArithmeticError, ValueError, TypeError):
        return None
    if isinstance(out, complex) or not math.isfinite(out):
        return None
    return float(out)


FD_STEPS = (1e-6, 1e-5)  # the finite-difference steps the tests take from the drawn point


def _smooth_at(op: Op, xs: list, nodes: Iterable[int], out: float, margin: float,
               max_slope: float) -> bool:
    """Whether op is smooth within `margin` of xs along each input in `nodes`: its derivative
    there is finite, at most max_slope, and matches a central difference of step `margin`, which
    fails near a kink (relu, abs), a domain edge (log, sqrt, a pole of div) or a steep wall; and
    its one-sided slopes agree, which fails at a kink right at xs."""
    nodes = list(nodes)
    try:
        local = op.df(*xs, out)
    except (ArithmeticError, ValueError, TypeError):
        return False
    local = tuple(local) if isinstance(local, (tuple, list)) else (local,)
    for k in nodes:
        d = local[k]
        if isinstance(d, Value) or not math.isfinite(d) or abs(d) > max_slope:
            return False
        hi = _value(op, xs[:k] + [xs[k] + margin] + xs[k + 1:])
        lo = _value(op, xs[:k] + [xs[k] - margin] + xs[k + 1:])
        if hi is None or lo is None:
            return False
        if abs((hi - lo) / (2 * margin) - d) > 0.02 * (1.0 + abs(d)):
            return False
        for step in FD_STEPS:  # a hole in the domain (a pole) exactly where the tests step to
            for x in (xs[k] - step, xs[k] + step):
                if _value(op, xs[:k] + [x] + xs[k + 1:]) is None:
                    return False
        # a kink right at xs that a central difference cannot see (abs at 0): one-sided slopes
        eta = margin / 100
        up = _value(op, xs[:k] + [xs[k] + eta] + xs[k + 1:])
        dn = _value(op, xs[:k] + [xs[k] - eta] + xs[k + 1:])
        if up is None or dn is None or abs((up - out) - (out - dn)) / eta > 0.02 * (1.0 + abs(d)):
            return False
    if 1 < len(nodes) <= 3:  # moving several inputs at once stays inside the domain too (pow)
        for corner in itertools.product((-margin, margin), repeat=len(nodes)):
            moved = list(xs)
            for k, step in zip(nodes, corner):
                moved[k] += step
            if _value(op, moved) is None:
                return False
    return True


def _finite_slopes(op: Op, xs: list, out: float, max_slope: float) -> bool:
    """Whether every local derivative is a finite number at most max_slope in size."""
    try:
        local = op.df(*xs, out)
    except (ArithmeticError, ValueError, TypeError):
        return False
    local = tuple(local) if isinstance(local, (tuple, list)) else (local,)
    return all(not isinstance(d, Value) and abs(d) <= max_slope for d in local)


def _count(n: Union[int, tuple]) -> st.SearchStrategy:
    return st.just(n) if isinstance(n, int) else st.integers(n[0], n[1])


def _no_tiny(x: float) -> float:
    # below 1e-9 in size a number is 0 here: at 1e-186 an oracle's own formula (a / b**2 for the
    # slope of a / b) underflows to 0 / 0, which is the oracle's problem, not the engine's
    return 0.0 if abs(x) < 1e-9 else x


LEAVES = st.floats(-2, 2).map(_no_tiny)
CONSTANTS = st.sampled_from([2.0, -1.0, 0.5, 3.0]) | st.floats(-2, 2).map(_no_tiny)


@st.composite
def graphs(draw, *, leaves: Union[int, tuple] = (1, 4), steps: Union[int, tuple] = (1, 12),
           outputs: int = 1, any_outputs: bool = False, combine: int = 0,
           ops: Optional[Iterable[str]] = None, leaf_values: Optional[st.SearchStrategy] = None,
           constants: bool = True, smooth: bool = True, finite_slopes: bool = True,
           margin: float = 1e-2, max_abs: float = 50.0, max_slope: float = 100.0) -> RandomGraph:
    """A random DAG (shared sub-expressions, nodes used several times, parallel edges) over the
    built-in operations, every step inside its domain at the drawn leaf values, every value at
    most max_abs in size. outputs: how many of the last nodes are outputs; any_outputs: instead
    1 to `outputs` of any nodes (a leaf, the same node twice); combine=k: instead the one output
    is the sum of the last k nodes (so the root depends on several). ops: names
    (from the live table) to draw from, default every built-in. leaf_values: default [-2, 2].
    constants: binary and n-ary steps sometimes take a Python number as an operand.
    Local derivatives are at most max_slope in size; finite_slopes=False (with smooth=False)
    allows any, an infinite one too (sqrt and pow at 0)."""
    names = sorted(BUILTIN_OPS if ops is None else ops)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ValueError(f"graphs(ops=...): {unknown} not in engine.OPS ({sorted(OPS)})")
    n_leaves = draw(_count(leaves))
    values = [float(draw(leaf_values if leaf_values is not None else LEAVES))
              for _ in range(n_leaves)]
    xs = tuple(values)
    program = []
    for _ in range(draw(_count(steps))):
        name = draw(st.sampled_from(names))
        op = OPS[name]
        for _attempt in range(4):  # a few tries to land inside the domain (log, sqrt, pow, div)
            arity = op.arity if op.arity >= 0 else draw(st.integers(1, 5))
            args: list = []
            for _i in range(arity):
                if constants and arity >= 2 and draw(st.integers(0, 4)) == 0:
                    args.append(Const(float(draw(CONSTANTS))))
                else:
                    args.append(draw(st.integers(0, len(values) - 1)))
            node_positions = [i for i, a in enumerate(args) if not isinstance(a, Const)]
            if not node_positions:
                continue
            operands = [a.value if isinstance(a, Const) else values[a] for a in args]
            out = _value(op, operands)
            if out is None or abs(out) > max_abs:
                continue
            if smooth and not _smooth_at(op, operands, node_positions, out, margin, max_slope):
                continue
            if not smooth and finite_slopes and not _finite_slopes(op, operands, out, max_slope):
                continue
            program.append(Step(name, tuple(args)))
            values.append(out)
            break
    while len(program) < max(outputs, 1):  # nothing landed: a step that is always fine
        program.append(Step("mul", (0, 0)))
        values.append(values[0] * values[0])
    n = len(values)
    if combine:
        program.append(Step("sum", tuple(range(max(n_leaves, n - combine), n))))
        return RandomGraph(xs, tuple(program), (n,))
    if any_outputs:
        outs = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=outputs))
        return RandomGraph(xs, tuple(program), tuple(outs))
    return RandomGraph(xs, tuple(program), tuple(range(n - outputs, n)))


#: inputs for n-ary max: ties, nan (first, later, several), infinities and zeros of both signs
MAX_INPUTS = st.lists(st.floats(-1e6, 1e6) | st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0]), min_size=1, max_size=8)


def same_float(a: float, b: float) -> bool:
    """Equal as IEEE values, the sign of a zero included; any nan equals any nan."""
    return (a != a and b != b) or (a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
