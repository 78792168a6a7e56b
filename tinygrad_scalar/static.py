"""Static graphs: trace a scalar graph once, replay it for a whole minibatch with NumPy.

The engine builds a new graph for every example (define-by-run). A *static* graph is built once
and run many times: its fed leaves are placeholders, its parameters are state that the run reads,
and the same program of operations is executed for every example. Minibatching then gives every
fed and computed node a leading batch axis (parameters get none), so one NumPy operation does the
work of a whole batch, and a parameter's gradient is the sum over the batch of its per-example
gradients.

    prog = trace(lambda x, y: (1 - y * model(x)).relu(), [0.0, 0.0], 1.0,
                 params=model.parameters())
    losses = prog(X, y)                 # X: (B, 2), y: (B,) -> per-example losses, (B,)
    prog.backward(reduce="mean")        # writes d mean(loss) / d p into every p.grad

How it works:

- `Program.from_graph` (or `trace`) walks the graph once in the engine's topological order and
  writes a *tape*: one `Instr` per node, holding the engine `Op` and the slots of its inputs.
  Python control flow that looked at data while the graph was built (an `if x.data > 0`, a max
  over `.data`) is frozen at trace time, exactly as under `jax.jit`: `Program.verify` re-traces
  the function on real examples and says so when the graph would have been different.
- The tape is scheduled into groups: nodes of the same depth, operation and input kinds run as
  one vectorised NumPy call over (nodes x batch). Each built-in operation has a NumPy kernel
  written from the engine's own value and derivative rules (relu's branch per element, abs'(0) =
  0, sqrt'(0) = inf, pow's exponent derivative 0 at base 0 and nan for a negative base); an
  operation without a kernel (a user's custom op) runs its scalar `f`/`df` per element.
- Backward sweeps the groups in reverse. Each node's gradient is summed from its users'
  contributions in the engine's own order, so per example the replay does the same floating
  point operations as `Value.backward` and gets the same numbers (exact=True, the default, also
  evaluates exp/log/sin/cos/tanh/sigmoid/pow through Python's `math` per element, because NumPy's
  vectorised versions may round differently in the last bit).
"""
from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from . import engine
from .engine import Op, Value, topological_order

__all__ = ["Program", "Instr", "Grads", "TraceError", "trace"]

ArrayLike = Any


class TraceError(ValueError):
    """A graph that cannot be replayed as traced: a mis-fed input, an unused leaf, or a graph
    whose structure depended on the data it was traced with."""


# ---------------------------------------------------------------------------------------------
# Kernels: each built-in operation as vectorised value and local-derivative rules.
#
# value(M, args) -> array; local(M, args, out) -> one entry per input: an array, or ONE / MINUS
# (the engine's constant local 1.0 / -1.0, whose product with a gradient is exactly g / -g).
# suspect(args) -> mask of elements where the engine's domain check might raise (the engine's
# own check then decides, element by element). M holds exp, log, sin, cos, tanh: NumPy's, or
# Python's math applied per element (exact mode).

ONE, MINUS = "one", "minus"


def _per_element(fn: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    def apply(x):
        x = np.asarray(x, dtype=float)
        flat = np.fromiter(map(fn, x.ravel().tolist()), dtype=float, count=x.size)
        return flat.reshape(x.shape)
    apply.__name__ = getattr(fn, "__name__", "per_element")
    return apply


class _Math:
    """The transcendental functions kernels call: NumPy's ufuncs, or math's per element."""

    def __init__(self, exact: bool):
        if exact:
            self.exp, self.log = _per_element(math.exp), _per_element(math.log)
            self.sin, self.cos = _per_element(math.sin), _per_element(math.cos)
            self.tanh = _per_element(math.tanh)
        else:
            self.exp, self.log, self.sin, self.cos, self.tanh = (
                np.exp, np.log, np.sin, np.cos, np.tanh)


class _Kernel:
    __slots__ = ("value", "local", "suspect", "can_overflow", "ufunc")

    def __init__(self, value, local, suspect=None, can_overflow=True, ufunc=None):
        self.value, self.local, self.suspect, self.can_overflow = (
            value, local, suspect, can_overflow)
        self.ufunc = ufunc  # the value is this ufunc of the inputs: written straight into place


def _sign(a):
    return np.where(a > 0.0, 1.0, np.where(a < 0.0, -1.0, 0.0))


def _sigmoid_value(M, args):
    a = args[0]
    e = M.exp(-np.abs(a))  # exp(-x) for x >= 0 and exp(x) for x < 0, as engine._sigmoid
    return np.where(a >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _pow_local(M, args, out):
    a, b = args
    zero_small = (a == 0.0) & (b < 1.0)
    safe_a = np.where(zero_small, 1.0, a)
    dbase = np.where(zero_small, np.where(b == 0.0, 0.0, math.inf),
                     b * np.power(safe_a, b - 1.0))
    pos = a > 0.0
    dexp = np.where(pos, out * np.log(np.where(pos, a, 1.0)),
                    np.where(a == 0.0, 0.0, math.nan))
    return dbase, dexp


def _pow_suspect(args):
    a, b = args
    return ((a == 0.0) & (b < 0.0)) | ((a < 0.0) & ~(np.floor(b) == b))


_KERNELS: dict = {
    engine.ADD: _Kernel(lambda M, x: x[0] + x[1], lambda M, x, out: (ONE, ONE),
                        ufunc=np.add),
    engine.SUB: _Kernel(lambda M, x: x[0] - x[1], lambda M, x, out: (ONE, MINUS),
                        ufunc=np.subtract),
    engine.MUL: _Kernel(lambda M, x: x[0] * x[1], lambda M, x, out: (x[1], x[0]),
                        ufunc=np.multiply),
    engine.DIV: _Kernel(lambda M, x: x[0] / x[1],
                        lambda M, x, out: (1.0 / x[1], -out / x[1]),
                        lambda x: x[1] == 0.0, ufunc=np.divide),
    engine.NEG: _Kernel(lambda M, x: -x[0], lambda M, x, out: (MINUS,), can_overflow=False),
    engine.ABS: _Kernel(lambda M, x: np.abs(x[0]), lambda M, x, out: (_sign(x[0]),),
                        can_overflow=False),
    engine.RELU: _Kernel(lambda M, x: np.where(x[0] <= 0.0, 0.0, x[0]),
                         lambda M, x, out: (np.where(x[0] > 0.0, 1.0,  # relu'(nan) nan
                                                     np.where(x[0] <= 0.0, 0.0, x[0])),),
                         can_overflow=False),
    engine.TANH: _Kernel(lambda M, x: M.tanh(x[0]), lambda M, x, out: (1.0 - out * out,),
                         can_overflow=False),
    engine.SIGMOID: _Kernel(_sigmoid_value, lambda M, x, out: (out * (1.0 - out),),
                            can_overflow=False),
    engine.EXP: _Kernel(lambda M, x: M.exp(x[0]), lambda M, x, out: (out,)),
    engine.LOG: _Kernel(lambda M, x: M.log(x[0]), lambda M, x, out: (1.0 / x[0],),
                        lambda x: x[0] <= 0.0, can_overflow=False),
    engine.SQRT: _Kernel(lambda M, x: np.sqrt(x[0]),
                         lambda M, x, out: (np.where(out != 0.0, 0.5 / out, math.inf),),
                         lambda x: x[0] < 0.0, can_overflow=False),
    engine.SIN: _Kernel(lambda M, x: M.sin(x[0]), lambda M, x, out: (M.cos(x[0]),),
                        lambda x: ~np.isfinite(x[0]), can_overflow=False),
    engine.COS: _Kernel(lambda M, x: M.cos(x[0]), lambda M, x, out: (-M.sin(x[0]),),
                        lambda x: ~np.isfinite(x[0]), can_overflow=False),
}
# pow in fast mode only: in exact mode it runs the engine's own rules per element (Python's
# float ** has its own special cases), as custom operations do.
_POW_FAST = _Kernel(lambda M, x: np.power(x[0], x[1]), _pow_local, _pow_suspect)


def _seq_sum(args: list, out: np.ndarray) -> np.ndarray:
    """((0.0 + x0) + x1) + ...: Python's sum(xs, 0.0) before 3.12, element by element."""
    np.add(args[0], 0.0, out=out)
    for a in args[1:]:
        np.add(out, a, out=out)
    return out


def _neumaier_sum(args: list, out: np.ndarray) -> np.ndarray:
    """sum(xs, 0.0) as Python 3.12+ computes it: Neumaier's compensated summation."""
    f = np.zeros(out.shape)
    c = np.zeros(out.shape)
    for x in args:
        t = f + x
        big = np.abs(f) >= np.abs(x)
        c += np.where(big, (f - t) + x, (x - t) + f)
        f = t
    fix = (c != 0.0) & np.isfinite(c)
    np.copyto(out, np.where(fix, f + c, f))
    return out


def _probe_sum_mode() -> Optional[Callable]:
    """The vectorised sum that reproduces engine._sum_f (Python's own sum) on tricky inputs,
    or None (then sums run the engine's rule per element: still exact, slower)."""
    probes = [[0.1] * 10, [1.0, 1e100, 1.0, -1e100], [1e308, 1e308, -1e308], [-0.0, -0.0],
              [1e16, 1.0, 1.0, 1.0, -1e16], [math.inf, 1.0], [math.nan, 2.0], [3.0],
              [1.0, -1.0, 1e-20], [0.7, 0.1, 0.2, 1e-17, -1.0], [-math.inf, math.inf]]
    with np.errstate(all="ignore"):
        for fn in (_seq_sum, _neumaier_sum):
            ok = True
            for p in probes:
                want = engine._sum_f(*p)
                got = float(fn([np.array([x]) for x in p], np.empty(1))[0])
                if not (got == want or (got != got and want != want)) or \
                        math.copysign(1.0, got) != math.copysign(1.0, want):
                    ok = False
                    break
            if ok:
                return fn
    return None


_SUM_KERNEL = _probe_sum_mode()
_FSUM_ABOVE = 64  # engine._sum_f switches to math.fsum for more inputs than this


# ---------------------------------------------------------------------------------------------
# The tape.

class Instr(NamedTuple):
    """One tape entry: slot `index` = op(slots in `args`). kind: 'input' (fed), 'param'
    (state, gets a gradient), 'frozen' (state, no gradient), 'const' (baked) or 'op'."""
    index: int
    kind: str
    op: Optional[Op]
    args: tuple
    label: str
    value: float  # trace-time value (the baked value for constants)

    def __str__(self) -> str:
        lab = f"  # {self.label}" if self.label else ""
        if self.kind == "op":
            return f"%{self.index} = {self.op.name} " + ", ".join(f"%{a}" for a in self.args) + lab
        if self.kind == "const":
            return f"%{self.index} = const {self.value!r}"
        return f"%{self.index} = {self.kind} {self.label or '?'} (traced at {self.value:.6g})"


class Grads(NamedTuple):
    """What Program.backward computed. params: d/d p reduced over the batch (sum or mean), in
    program.params order; per_example: (B, n_params) before reduction (only when asked for:
    by default each contribution to a parameter is summed over the batch as it is made, the
    cheaper way); inputs: per input slot, d/d input per example (shape as fed), or None."""
    params: np.ndarray
    per_example: Optional[np.ndarray]
    inputs: Optional[tuple]


class _Group:
    """Tape nodes of one depth, operation and input kinds: one vectorised call."""
    __slots__ = ("op", "kernel", "batched", "nodes", "start", "stop", "arity", "gathers",
                 "fanout", "pos_edges", "cache", "grad_rows")

    def __init__(self, op, kernel, batched, nodes, arity):
        self.op, self.kernel, self.batched, self.nodes, self.arity = (
            op, kernel, batched, nodes, arity)
        self.cache = None


def _as_index(rows: Sequence[int]):
    """A slice when the rows are evenly spaced (a view, no copy), else an index array."""
    n = len(rows)
    if n == 1:
        return slice(rows[0], rows[0] + 1)
    step = rows[1] - rows[0]
    if step != 0 and all(rows[i + 1] - rows[i] == step for i in range(n - 1)):
        stop = rows[-1] + step
        return slice(rows[0], stop if stop >= 0 else None, step)
    return np.asarray(rows, dtype=np.intp)


def _reduced(loc, g: np.ndarray, sel) -> np.ndarray:
    """Σ over the batch of loc * g, row by row (a parameter's contribution, summed where it is
    made). One example: exactly loc * g, the engine's product."""
    if loc is ONE:
        return g.sum(axis=1)
    if loc is MINUS:
        return -g.sum(axis=1)
    if sel is not None:
        loc = loc[sel]
    if loc.shape[-1] == 1:  # a value without batch axis: loc * Σ_b g
        return loc[:, 0] * g.sum(axis=1)
    return np.einsum("ij,ij->i", loc, g)


def _real_array(x, what: str) -> np.ndarray:
    """x as a float array; strings, complex numbers and other non-reals are a TypeError (NumPy
    would parse '1.5' or drop an imaginary part without a word)."""
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):
        raw = None
    if raw is not None and raw.dtype.kind in "biuf":
        return raw.astype(float, copy=False)
    if raw is not None and raw.dtype.kind == "O":
        flat = raw.ravel().tolist()
        if all(isinstance(v, (numbers.Real, Value)) for v in flat):
            nums = [v.data if isinstance(v, Value) else float(v) for v in flat]
            return np.array(nums, dtype=float).reshape(raw.shape)
    raise TypeError(f"{what} must be real numbers, got {type(x).__name__}: {x!r}"[:300])


def _engine_error(op: Op, xs: tuple) -> Optional[Exception]:
    """The exception the engine raises for op(*xs) with recording on (check, f, df and the
    overflow test), or None when it accepts the inputs."""
    token = engine._recording.set(True)
    try:
        engine.apply(op, *[Value(x) for x in xs])
    except Exception as e:  # the engine's own error, whatever the operation raises
        return e
    finally:
        engine._recording.reset(token)
    return None


def _label(v: Value) -> str:
    return v.label or ""


def _leaves(x, what: str) -> list:
    """An input slot: a Value, or a sequence of Values (fed as one array, last axis)."""
    if isinstance(x, Value):
        return [x]
    try:
        items = list(x)
    except TypeError:
        raise TypeError(f"{what} must be a Value or a sequence of Values, got "
                        f"{type(x).__name__}: {x!r}") from None
    if not items:
        raise TraceError(f"{what} is an empty sequence: an input slot needs at least one Value")
    for i, v in enumerate(items):
        if not isinstance(v, Value):
            raise TypeError(f"{what}[{i}] must be a Value, got {type(v).__name__}: {v!r}")
    return items


def _output_structure(outputs) -> tuple[list, list, bool]:
    """Flatten outputs: a Value (single) or a sequence of Values / sequences of Values.
    Returns (flat Values, per item (start, count, is_group), single)."""
    if isinstance(outputs, Value) or isinstance(outputs, numbers.Real):
        outputs, single = [outputs], True
    else:
        single = False
        try:
            outputs = list(outputs)
        except TypeError:
            raise TypeError(f"outputs must be a Value or a sequence of Values, got "
                            f"{type(outputs).__name__}: {outputs!r}") from None
        if not outputs:
            raise TraceError("outputs is empty: a program needs at least one output")
    flat, items = [], []
    for i, o in enumerate(outputs):
        if isinstance(o, (Value, numbers.Real)) and not isinstance(o, bool):
            flat.append(o if isinstance(o, Value) else Value.constant(o))
            items.append((len(flat) - 1, 1, False))
            continue
        try:
            sub = list(o)
        except TypeError:
            raise TypeError(f"output {i} must be a Value, a number or a sequence of them, got "
                            f"{type(o).__name__}: {o!r}") from None
        if not sub:
            raise TraceError(f"output {i} is an empty sequence")
        start = len(flat)
        for j, s in enumerate(sub):
            if isinstance(s, bool) or not isinstance(s, (Value, numbers.Real)):
                raise TypeError(f"output {i}[{j}] must be a Value or a number, got "
                                f"{type(s).__name__}: {s!r}")
            flat.append(s if isinstance(s, Value) else Value.constant(s))
        items.append((start, len(sub), True))
    return flat, items, single


def _describe(v: Value) -> str:
    return f"{v!r}" if not v.label else f"{v.label!r} ({v!r})"


# ---------------------------------------------------------------------------------------------
# The program.

class Program:
    """A traced graph as a flat program, replayable on one example or a batch.

    Build with `Program.from_graph(outputs, inputs, params)` or `trace(fn, *examples)`.
    Run with `prog(*feeds)` / `prog.forward(*feeds)`, then `prog.backward()`.
    """

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_graph(cls, outputs, inputs: Sequence = (), params: Optional[Sequence[Value]] = None,
                   *, frozen: Sequence[Value] = (), names: Optional[Sequence[str]] = None,
                   allow_unused: bool = False, exact: bool = True) -> "Program":
        """Compile the graph below `outputs` into a program.

        outputs: a Value, or a sequence of Values / sequences of Values (a sequence comes back
        as a (B, k) array). inputs: the leaves fed at run time (placeholders), in feeding order;
        an item may be a sequence of leaves, fed as one array whose last axis runs over them.
        params: the leaves that keep state and get gradients; None means every leaf that is
        neither an input nor a constant. frozen: state leaves without gradient (read at every
        run, like params). Constants (numbers that entered the graph) are baked in.
        names: one name per input slot, for feeding by keyword (default: labels or input0..).
        allow_unused: accept inputs and params the outputs do not depend on (an error by
        default: feeding a leaf the graph never uses is almost always a mistake).
        exact: replay per example with exactly the engine's floating point operations
        (exp/log/sin/cos/tanh/sigmoid/pow through Python's math per element); False uses
        NumPy's vectorised versions of those (faster, may differ in the last bit).
        """
        return cls(outputs, inputs, params, frozen, names, allow_unused, exact)

    def __init__(self, outputs, inputs=(), params=None, frozen=(), names=None,
                 allow_unused=False, exact=True, _fn=None):
        if not isinstance(exact, bool):
            raise TypeError(f"exact must be True or False, got {exact!r}")
        self.exact = exact
        self._M = _Math(exact)
        self._fn = _fn
        flat_out, self._out_items, self._single_out = _output_structure(outputs)
        inputs = [inputs] if isinstance(inputs, Value) else list(inputs)
        slots = [_leaves(x, f"inputs[{i}]") for i, x in enumerate(inputs)]
        self._slot_groups = [not isinstance(x, Value) for x in inputs]
        self._build(flat_out, slots, params, frozen, allow_unused)
        self.input_names = self._names(names, slots)
        self._plan()
        self._B = None

    def _names(self, names, slots) -> list[str]:
        if names is not None:
            names = list(names)
            if len(names) != len(slots):
                raise TraceError(f"names has {len(names)} entries for {len(slots)} input slots")
            for nm in names:
                if not isinstance(nm, str) or not nm.isidentifier():
                    raise TypeError(f"input names must be identifiers, got {nm!r}")
            if len(set(names)) != len(names):
                raise TraceError(f"input names must be distinct, got {names}")
            return names
        names = []
        for i, s in enumerate(slots):
            lab = s[0].label if len(s) == 1 else ""
            names.append(lab if lab and lab.isidentifier() else f"input{i}")
        if len(set(names)) != len(names):
            names = [f"input{i}" for i in range(len(slots))]
        return names

    def _build(self, outs: list, slots: list, params, frozen, allow_unused: bool) -> None:
        # the engine's topological order; several outputs: that of a sum over them
        if len(outs) == 1:
            root = outs[0]
        else:
            root = engine._node(engine.SUM, tuple(outs), (1.0,) * len(outs), 0.0)
        topo = topological_order(root)
        if len(outs) > 1:
            topo.pop()  # the helper sum itself
        index = {v: i for i, v in enumerate(topo)}
        self._outputs = outs

        fed: dict = {}
        for s, leaves in enumerate(slots):
            for j, v in enumerate(leaves):
                where = f"inputs[{s}]" + (f"[{j}]" if self._slot_groups[s] else "")
                if not v.is_leaf:
                    raise TraceError(f"{where} is {_describe(v)}, computed by "
                                     f"'{v.op.name}': only leaves can be fed")
                if v.is_constant:
                    raise TraceError(f"{where} is the constant {v.data!r}: a number that "
                                     "entered the graph is baked in and cannot be fed; use a "
                                     "Value leaf as the placeholder")
                if v in fed:
                    raise TraceError(f"{where} is the same Value as inputs{fed[v]}: each leaf "
                                     "is fed once")
                fed[v] = f"[{s}]" + (f"[{j}]" if self._slot_groups[s] else "")
                if v not in index and not allow_unused:
                    raise TraceError(f"{where} {_describe(v)} is never used: the outputs do "
                                     "not depend on it (a placeholder the function ignores, or "
                                     "a different Value than the one the graph was built from)."
                                     " Pass allow_unused=True to feed it anyway")

        frozen = list(frozen)
        frozen_set = set()
        for i, v in enumerate(frozen):
            if not isinstance(v, Value):
                raise TypeError(f"frozen[{i}] must be a Value, got {type(v).__name__}")
            if not v.is_leaf or v.is_constant or v in fed:
                raise TraceError(f"frozen[{i}] {_describe(v)} must be a non-constant leaf "
                                 "that is not fed")
            frozen_set.add(v)
        if params is None:
            params = [v for v in topo if v.is_leaf and not v.is_constant and v not in fed
                      and v not in frozen_set]
        else:
            if isinstance(params, Value):
                raise TypeError("params must be a sequence of Values (e.g. model.parameters()),"
                                " got a single Value: wrap it in a list")
            params = list(params)
            seen = set()
            for i, p in enumerate(params):
                if not isinstance(p, Value):
                    raise TypeError(f"params[{i}] must be a Value, got {type(p).__name__}: {p!r}")
                if not p.is_leaf:
                    raise TraceError(f"params[{i}] {_describe(p)} is computed by "
                                     f"'{p.op.name}': only leaves can be parameters")
                if p.is_constant:
                    raise TraceError(f"params[{i}] is the constant {p.data!r}: numbers that "
                                     "entered the graph are baked in")
                if p in fed or p in frozen_set:
                    raise TraceError(f"params[{i}] {_describe(p)} is also "
                                     f"{'an input' if p in fed else 'frozen'}")
                if p in seen:
                    raise TraceError(f"params[{i}] {_describe(p)} appears twice")
                seen.add(p)
                if p not in index and not allow_unused:
                    raise TraceError(f"params[{i}] {_describe(p)} is never used by the outputs;"
                                     " pass allow_unused=True if that is intended")
            stray = [v for v in topo if v.is_leaf and not v.is_constant and v not in fed
                     and v not in seen and v not in frozen_set]
            if stray:
                shown = ", ".join(_describe(v) for v in stray[:5])
                raise TraceError(f"{len(stray)} leaf(s) of the graph are neither inputs, params, "
                                 f"frozen nor constants: {shown}{' ...' if len(stray) > 5 else ''}."
                                 " List them in params= (trained), frozen= (state without "
                                 "gradient) or inputs= (fed)")
        for v in frozen:
            if v not in index and not allow_unused:
                raise TraceError(f"frozen leaf {_describe(v)} is never used by the outputs")
        self.params: list[Value] = params
        self.frozen: list[Value] = frozen
        self._slots = slots

        param_pos = {p: i for i, p in enumerate(params)}
        tape = []
        for i, v in enumerate(topo):
            if v.is_leaf:
                if v.is_constant:
                    kind = "const"
                elif v in fed:
                    kind = "input"
                elif v in param_pos:
                    kind = "param"
                else:
                    kind = "frozen"
                tape.append(Instr(i, kind, None, (), _label(v), v.data))
            else:
                tape.append(Instr(i, "op", v.op, tuple(index[p] for p in v._prev), _label(v),
                                  v.data))
        self.tape: list[Instr] = tape
        self._out_slots = [index[o] for o in outs]
        # leaves -> rows: inputs in feeding order, state as params then frozen
        self._input_slot_of = {}
        self._unused_inputs = []
        k = 0
        for s, leaves in enumerate(slots):
            for v in leaves:
                if v in index:
                    self._input_slot_of[index[v]] = k
                k += 1
        self._n_input_leaves = k
        self._param_slot = {index[p]: i for i, p in enumerate(params) if p in index}
        self._frozen_slot = {index[v]: len(params) + i for i, v in enumerate(frozen) if v in index}

    # -- scheduling ------------------------------------------------------------------------
    def _plan(self) -> None:
        tape = self.tape
        n = len(tape)
        batched = [False] * n
        level = [0] * n
        for ins in tape:
            if ins.kind == "input":
                batched[ins.index] = True
            elif ins.kind == "op":
                batched[ins.index] = any(batched[a] for a in ins.args)
                level[ins.index] = 1 + max(level[a] for a in ins.args)
        self._batched = batched
        # groups by (level, op, arity, which inputs are batched)
        keyed: dict = {}
        for ins in tape:
            if ins.kind != "op":
                continue
            key = (level[ins.index], id(ins.op), len(ins.args),
                   tuple(batched[a] for a in ins.args), batched[ins.index])
            if key not in keyed:
                keyed[key] = (ins.op, [])
            keyed[key][1].append(ins.index)
        order = sorted(keyed, key=lambda k: (k[0], k[4], keyed[k][0].name, k[2], k[3], k[1]))
        groups = []
        for key in order:
            op, nodes = keyed[key]
            groups.append(_Group(op, self._kernel(op, key[2]), key[4], nodes, key[2]))
        # row order within groups: first use by a later group (scan consumers from the last
        # level down, position by position), so that gathers become evenly spaced slices
        rank: dict = {}
        counter = 0
        for o in self._out_slots:
            if o not in rank:
                rank[o] = counter
                counter += 1
        for g in reversed(groups):
            g.nodes.sort(key=lambda i: rank.get(i, i + n))
            for j in range(g.arity):
                for i in g.nodes:
                    a = tape[i].args[j]
                    if a not in rank:
                        rank[a] = counter
                        counter += 1
        # rows: static store S (n_s, 1): params, frozen, consts, static op groups;
        # batched store V (n_b, B): input leaves, batched op groups
        row = [0] * n
        n_state = len(self.params) + len(self.frozen)
        for i, k in self._param_slot.items():
            row[i] = k
        for i, k in self._frozen_slot.items():
            row[i] = k
        consts = sorted((ins.index for ins in tape if ins.kind == "const"),
                        key=lambda i: rank.get(i, i + n))
        for k, i in enumerate(consts):
            row[i] = n_state + k
        for i, k in self._input_slot_of.items():
            row[i] = k
        ns, nb = n_state + len(consts), self._n_input_leaves
        for g in groups:
            if g.batched:
                g.start = nb
                nb += len(g.nodes)
            else:
                g.start = ns
                ns += len(g.nodes)
            g.stop = g.start + len(g.nodes)
            for k, i in enumerate(g.nodes):
                row[i] = g.start + k
        self._row, self._n_static, self._n_batched = row, ns, nb
        self._S = np.zeros((ns, 1))
        for i in consts:
            self._S[row[i], 0] = tape[i].value
        for g in groups:
            g.gathers = []
            for j in range(g.arity):
                parents = [tape[i].args[j] for i in g.nodes]
                g.gathers.append((batched[parents[0]], _as_index([row[p] for p in parents])))
        self._groups = groups
        self._plan_backward()

    def _kernel(self, op: Op, arity: int):
        if op is engine.SUM:
            if _SUM_KERNEL is None or arity > _FSUM_ABOVE:
                return None
            return "sum"
        if op is engine.POW:
            return None if self.exact else _POW_FAST
        return _KERNELS.get(op)

    def _plan_backward(self) -> None:
        """Where each contribution d out/d parent * g goes: slot t of the parent's gradient
        buffer, t being the parent's t-th contribution in the engine's backward order."""
        tape = self.tape
        # gradient groups: every op group, plus the input leaves and the parameters
        owner: dict = {}  # tape slot -> (grad group id, position in it)
        for gid, g in enumerate(self._groups):
            for k, i in enumerate(g.nodes):
                owner[i] = (gid, k)
        n_groups = len(self._groups)
        INPUTS, PARAMS = n_groups, n_groups + 1
        for i, k in self._input_slot_of.items():
            owner[i] = (INPUTS, k)
        for i, k in self._param_slot.items():
            owner[i] = (PARAMS, k)
        sizes = [len(g.nodes) for g in self._groups] + [self._n_input_leaves, len(self.params)]
        # the engine's order: reversed topological order, parents in argument order; the
        # outputs first get their seeds (one per appearance among the outputs)
        count = [0] * len(tape)
        slot_of_seed = []
        for o in self._out_slots:
            slot_of_seed.append(count[o])
            count[o] += 1
        edge_rank: dict = {}
        for ins in reversed(tape):
            for j, a in enumerate(ins.args):
                if a in owner:
                    edge_rank[(ins.index, j)] = count[a]
                    count[a] += 1
        fan = [1] * (n_groups + 2)
        for i, (gid, k) in owner.items():
            fan[gid] = max(fan[gid], count[i])
        self._fan, self._sizes = fan, sizes
        self._pbuf = np.zeros((fan[PARAMS], sizes[PARAMS], 1))
        self._grad_groups = (INPUTS, PARAMS)
        self._owner = owner
        self._seed_dest = []  # per output: (grad group, flat index in its buffer)
        for o, t in zip(self._out_slots, slot_of_seed):
            if o in owner:
                gid, k = owner[o]
                self._seed_dest.append((gid, t * sizes[gid] + k))
            else:
                self._seed_dest.append(None)
        for gid, g in enumerate(self._groups):
            g.pos_edges = []
            for j in range(g.arity):
                by_dest: dict = {}
                for r, i in enumerate(g.nodes):
                    a = tape[i].args[j]
                    if a not in owner:
                        continue  # constants and frozen leaves get no gradient
                    pg, pk = owner[a]
                    t = edge_rank[(i, j)]
                    by_dest.setdefault(pg, ([], []))
                    by_dest[pg][0].append(r)
                    by_dest[pg][1].append(t * sizes[pg] + pk)
                edges = []
                for pg, (rows_, flat) in by_dest.items():
                    sel = None if len(rows_) == len(g.nodes) else _as_index(rows_)
                    edges.append((pg, sel, _as_index(flat)))
                g.pos_edges.append(edges)
        # a node with fewer contributions than its group's fan leaves slots that nothing
        # writes: zeros from allocation, so adding them changes nothing

    # -- feeding ---------------------------------------------------------------------------
    def _feed(self, args: tuple, kwargs: dict) -> tuple[np.ndarray, int, bool]:
        names = self.input_names
        if len(args) > len(names):
            raise TypeError(f"this program takes {len(names)} input(s) ({', '.join(names)}), "
                            f"got {len(args)} positional")
        given: list = list(args) + [None] * (len(names) - len(args))
        have = [True] * len(args) + [False] * (len(names) - len(args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"unknown input {k!r}; this program's inputs are {names}")
            i = names.index(k)
            if have[i]:
                raise TypeError(f"input {k!r} given twice")
            given[i], have[i] = v, True
        missing = [names[i] for i in range(len(names)) if not have[i]]
        if missing:
            raise TypeError(f"missing input(s) {missing}; this program's inputs are {names}")
        arrays, batch, single = [], None, None
        for s, (name, x) in enumerate(zip(names, given)):
            k = len(self._slots[s])
            group = self._slot_groups[s]
            a = _real_array(x, f"input {name!r}")
            if group:
                if a.ndim == 1 and a.shape[0] == k:
                    is_single, b = True, 1
                elif a.ndim == 2 and a.shape[1] == k:
                    is_single, b = False, a.shape[0]
                else:
                    raise TraceError(f"input {name!r} holds {k} leaves: feed shape ({k},) for "
                                     f"one example or (batch, {k}) for a batch, got shape "
                                     f"{a.shape}")
            else:
                if a.ndim == 0:
                    is_single, b = True, 1
                elif a.ndim == 1:
                    is_single, b = False, a.shape[0]
                else:
                    raise TraceError(f"input {name!r} is one leaf: feed a number for one "
                                     f"example or shape (batch,) for a batch, got shape "
                                     f"{a.shape}")
            if single is None:
                single = is_single
            elif single != is_single:
                this = "one example" if is_single else "a batch"
                first = "one example" if single else "a batch"
                raise TraceError(f"input {name!r} is fed {this} but {names[0]!r} {first}: "
                                 "feed every input with the same leading batch axis (np.full "
                                 "repeats a shared value)")
            if batch is None:
                batch = b
            elif b != batch:
                sizes = ", ".join(f"{n}: {np.shape(g)}" for n, g in zip(names, given))
                raise TraceError(f"inputs disagree on the batch size ({sizes}): every input "
                                 "needs the same leading batch axis")
            arrays.append(a)
        if batch is None:
            batch, single = 1, True
        if batch == 0:
            raise TraceError("the batch is empty: feed at least one example")
        return arrays, batch, single

    def _buffers(self, B: int) -> None:
        """Value and gradient buffers for batch size B, kept for the last few sizes (a fit's
        final partial minibatch alternates with the full ones)."""
        if self._B == B:
            return
        cache = self.__dict__.setdefault("_buf_cache", {})
        if B not in cache:
            if len(cache) >= 3:
                cache.pop(next(iter(cache)))
            take = {id(g): [None if isinstance(idx, slice) else
                            np.empty((len(idx), B if b else 1)) for b, idx in g.gathers]
                    for g in self._groups}
            cache[B] = (np.empty((self._n_batched, B)),
                        [np.zeros((self._fan[gid], self._sizes[gid], B))
                         for gid in range(len(self._sizes))], take)
        self._V, self._gbuf, self._take = cache[B]
        self._B = B

    # -- forward ---------------------------------------------------------------------------
    def forward(self, *feeds: ArrayLike, **named: ArrayLike):
        """Run the program: one example (numbers, or (k,) for an input slot of k leaves) or a
        batch (arrays with a leading batch axis). Returns the outputs: a float / (B,) array per
        Value output, a (k,) / (B, k) array per output that is a sequence of Values, a tuple
        when there are several. Parameters are read from their Values at every run."""
        arrays, B, single = self._feed(feeds, named)
        self._buffers(B)
        V, S = self._V, self._S
        k = 0
        for s, a in enumerate(arrays):
            n = len(self._slots[s])
            if self._slot_groups[s]:
                V[k:k + n] = a.reshape(-1, n).T
            else:
                V[k] = a
            k += n
        n_state = len(self.params) + len(self.frozen)
        if n_state:
            S[:len(self.params), 0] = np.fromiter((p.data for p in self.params), float,
                                                 len(self.params))
            if self.frozen:
                S[len(self.params):n_state, 0] = np.fromiter((v.data for v in self.frozen),
                                                             float, len(self.frozen))
        with np.errstate(all="ignore"):
            for g in self._groups:
                self._run_group(g, V, S, B)
            if not (np.isfinite(V.sum()) and np.isfinite(S.sum())):
                self._check_finite(V, S)
        self._fed_batch, self._single = B, single
        self._have_forward = True
        return self._collect_outputs(V, S, B, single)

    __call__ = forward

    def _args(self, g: _Group, V, S) -> list:
        # a slice is a view; rows by index: np.take into a buffer kept for this batch size
        # (mode='clip' is not buffered; the indices are always in range)
        bufs = self._take[id(g)]
        return [(V if b else S)[idx] if buf is None else
                np.take(V if b else S, idx, axis=0, out=buf, mode="clip")
                for (b, idx), buf in zip(g.gathers, bufs)]

    def _run_group(self, g: _Group, V, S, B) -> None:
        args = self._args(g, V, S)
        dest = (V if g.batched else S)[g.start:g.stop]
        kern = g.kernel
        if kern == "sum":
            _SUM_KERNEL(args, dest)
            g.cache = (args, None)
            return
        if kern is None:
            out, locs = self._per_element(g, args)
            dest[...] = out
            g.cache = (args, locs)
            return
        if kern.suspect is not None:
            bad = kern.suspect(args)
            if bad.any():
                self._raise_from_engine(g, args, np.broadcast_to(bad, dest.shape))
        try:
            if kern.ufunc is not None:
                kern.ufunc(*args, out=dest)
            else:
                dest[...] = kern.value(self._M, args)
        except (ArithmeticError, ValueError):  # math's per element errors (exact mode)
            self._raise_from_engine(g, args, None)
        g.cache = (args, None)

    def _per_element(self, g: _Group, args: list):
        """An operation without a NumPy kernel: the engine's own f and df, element by element."""
        op = g.op
        shape = np.broadcast_shapes(*(a.shape for a in args))
        cols = [np.broadcast_to(a, shape).ravel().tolist() for a in args]
        out = np.empty(len(cols[0]))
        locs = [np.empty(len(cols[0])) for _ in args]
        check, f, df = op.check, op.f, op.df
        for e, xs in enumerate(zip(*cols)):
            try:
                if check is not None:
                    check(*xs)
                o = float(f(*xs))
                ds = df(*xs, o)
                if not math.isfinite(o) and all(math.isfinite(x) for x in xs):
                    raise ArithmeticError
            except Exception:
                self._raise_at(g, shape, e, xs)
            out[e] = o
            for j, d in enumerate(ds):
                locs[j][e] = float(d)
        return out.reshape(shape), [loc.reshape(shape) for loc in locs]

    def _raise_at(self, g: _Group, shape, e: int, xs: tuple):
        """Re-run one element through the engine itself and raise its error, saying where."""
        r, b = np.unravel_index(e, shape)
        node = self.tape[g.nodes[r]]
        where = f"tape node %{node.index}" + (f" ({node.label})" if node.label else "")
        where += f", batch index {b}" if g.batched else " (no batch axis: parameters only)"
        err = _engine_error(g.op, xs)
        if err is None:
            raise RuntimeError(f"replay of {engine._call(g.op, xs)} [{where}] failed where the "
                               "engine succeeds: please report this as a bug")
        try:
            new = type(err)(f"{err} [{where}]")
        except Exception:
            raise err from None
        raise new from None

    def _raise_from_engine(self, g: _Group, args: list, mask) -> None:
        shape = np.broadcast_shapes(*(a.shape for a in args))
        full = [np.broadcast_to(a, shape) for a in args]
        if mask is None:
            candidates = range(int(np.prod(shape)))
        else:
            candidates = np.flatnonzero(np.broadcast_to(mask, shape)).tolist()
        flat = [a.ravel() for a in full]
        for e in candidates:
            xs = tuple(float(a[e]) for a in flat)
            try:
                if g.op.check is not None:
                    g.op.check(*xs)
                out = float(g.op.f(*xs))
                g.op.df(*xs, out)
                if not math.isfinite(out) and all(math.isfinite(x) for x in xs):
                    raise ArithmeticError
            except Exception:
                self._raise_at(g, shape, e, xs)
        if mask is None:
            raise RuntimeError(f"replay of '{g.op.name}' failed on values the engine accepts: "
                               "please report this as a bug")

    def _check_finite(self, V, S) -> None:
        """Some value is inf/nan: find a node whose inputs are finite (an overflow, as the
        engine reports it); non-finite values fed in simply propagate, as in the engine."""
        for g in self._groups:
            if g.kernel is None or (g.kernel != "sum" and not g.kernel.can_overflow):
                continue
            args = self._args(g, V, S)
            out = (V if g.batched else S)[g.start:g.stop]
            bad = ~np.isfinite(out)
            if not bad.any():
                continue
            for a in args:
                bad = bad & np.isfinite(a)
            if bad.any():
                self._raise_from_engine(g, args, bad)

    def _collect_outputs(self, V, S, B, single):
        rows = []
        for o in self._out_slots:
            r = self._row[o]
            rows.append(V[r] if self._batched[o] else np.full(B, S[r, 0]))
        res = []
        for start, count, is_group in self._out_items:
            if is_group:
                arr = np.stack(rows[start:start + count], axis=1)
                res.append(arr[0].copy() if single else arr)
            else:
                arr = rows[start]
                res.append(float(arr[0]) if single else arr.copy())
        return res[0] if self._single_out else tuple(res)

    # -- backward --------------------------------------------------------------------------
    def backward(self, grad_outputs=None, reduce: str = "sum", *, accumulate: bool = True,
                 inputs: bool = False, per_example: bool = False,
                 write: bool = True) -> Grads:
        """Reverse sweep over the last forward's batch.

        grad_outputs: d loss / d output per output, as a number or per example ((B,) or
        (B, k) arrays); None means 1.0 (one output only). With several outputs, an entry None
        leaves that output out of the sweep (as torch.autograd.grad on a subset of outputs:
        a seed of 0.0 instead would still multiply through, and 0 * inf is nan).
        reduce: 'sum' (the gradient of the sum of the per-example outputs) or 'mean' (divided
        by the batch size). The reduced
        parameter gradients are added into each parameter's .grad (accumulate=True, as the
        engine's leaves accumulate: call zero_grad / optimizer.zero_grad first) or assigned
        (accumulate=False); write=False leaves .grad alone. inputs=True also returns d/d input
        per example; per_example=True also the parameters' per-example gradients (otherwise
        each contribution to a parameter is summed over the batch where it is made, since
        parameters have no batch axis). `reduce` scales only the reduced parameter gradients:
        the per-example arrays are each example's own gradient. Returns a Grads tuple.
        """
        if not getattr(self, "_have_forward", False):
            raise RuntimeError("backward needs a forward run first: call program(feeds) before "
                               "program.backward()")
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        B = self._fed_batch
        seeds = self._seeds(grad_outputs, B)
        V, S = self._V, self._S
        bufs = self._gbuf
        INPUTS, PARAMS = self._grad_groups
        flats = [b.reshape(-1, B) for b in bufs]
        if not per_example:  # parameters: one column, contributions reduced over the batch
            pbuf = self._pbuf
            flats[PARAMS] = pbuf.reshape(-1, 1)
        # the outputs' seeds; an unseeded output's slot holds 0 (it adds nothing)
        for dest, seed in zip(self._seed_dest, seeds):
            if dest is not None:
                if seed is not None and dest[0] == PARAMS and not per_example:
                    seed = seed.sum()  # an output that is a parameter itself
                flats[dest[0]][dest[1]] = 0.0 if seed is None else seed
        dead = self._dead_rows(tuple(s is not None for s in seeds))
        M = self._M
        with np.errstate(all="ignore"):
            for gid in range(len(self._groups) - 1, -1, -1):
                g = self._groups[gid]
                if dead is not None and dead[gid] is True:  # nothing here reaches a seed
                    for edges in g.pos_edges:
                        for pg, sel, dest in edges:
                            if pg != INPUTS or inputs:
                                flats[pg][dest] = 0.0
                    continue
                buf = bufs[gid]
                grad = buf[0]
                for t in range(1, self._fan[gid]):
                    grad += buf[t]
                args, locs = g.cache
                if locs is None:
                    kern = g.kernel
                    if kern == "sum":
                        locs = (ONE,) * g.arity
                    else:
                        out = (V if g.batched else S)[g.start:g.stop]
                        locs = kern.local(M, args, out)
                if g.op is engine.RELU:  # its flat part passes nothing (not 0 * inf), as the engine
                    grad = np.where(np.broadcast_to(locs[0], grad.shape) == 0.0, 0.0, grad)
                for j, edges in enumerate(g.pos_edges):
                    if not edges:
                        continue
                    loc = locs[j]
                    for pg, sel, dest in edges:
                        if pg == INPUTS and not inputs:
                            continue
                        target = flats[pg]
                        if pg == PARAMS and not per_example:
                            target[dest, 0] = _reduced(loc, grad if sel is None else grad[sel],
                                                       sel)
                        elif sel is None:
                            if loc is ONE:
                                target[dest] = grad
                            elif loc is MINUS:
                                if isinstance(dest, slice):
                                    np.negative(grad, out=target[dest])
                                else:
                                    target[dest] = -grad
                            elif isinstance(dest, slice):
                                np.multiply(loc, grad, out=target[dest])
                            else:
                                target[dest] = loc * grad
                        else:
                            gs = grad[sel]
                            if loc is ONE:
                                target[dest] = gs
                            elif loc is MINUS:
                                target[dest] = -gs
                            else:
                                target[dest] = np.broadcast_to(loc, grad.shape)[sel] * gs
                if dead is not None and dead[gid] is not None:  # rows off the seeded paths
                    for pg, zero in dead[gid]:
                        if pg != INPUTS or inputs:
                            flats[pg][zero] = 0.0
            # leaves: sum each one's contributions in order
            for gid in (INPUTS, PARAMS):
                if gid == INPUTS and not inputs:
                    continue
                buf = bufs[gid] if gid != PARAMS or per_example else pbuf
                for t in range(1, self._fan[gid]):
                    buf[0] += buf[t]
        if per_example:
            per_ex = bufs[PARAMS][0]
            params_grad = per_ex.sum(axis=1)
        else:
            per_ex = None
            params_grad = pbuf[0, :, 0].copy()
        if reduce == "mean":
            params_grad = params_grad / B
        # parameters the outputs never use (allow_unused) get zero
        if len(self._param_slot) < len(self.params):
            used = np.zeros(len(self.params), bool)
            used[list(self._param_slot.values())] = True
            params_grad = np.where(used, params_grad, 0.0)
            if per_ex is not None:
                per_ex = np.where(used[:, None], per_ex, 0.0)
        if write:
            vals = params_grad.tolist()
            if accumulate:
                for p, gv in zip(self.params, vals):
                    p.grad += gv
            else:
                for p, gv in zip(self.params, vals):
                    p.grad = gv
        in_grads = self._input_grads(bufs[INPUTS][0], B) if inputs else None
        return Grads(params_grad, None if per_ex is None else per_ex.T, in_grads)

    def _seeds(self, grad_outputs, B: int) -> list:
        n = len(self._out_slots)
        if grad_outputs is None:
            if n != 1:
                raise TypeError(f"this program has {n} outputs: pass grad_outputs (one seed per "
                                "output, a number or one per example)")
            return [np.ones(B)]
        items = [grad_outputs] if self._single_out else list(grad_outputs) \
            if not isinstance(grad_outputs, numbers.Real) else None
        if items is None or len(items) != len(self._out_items):
            raise TypeError(f"grad_outputs must match the outputs: {len(self._out_items)} "
                            f"item(s), got {grad_outputs!r}"[:300])
        seeds = []
        for (start, count, is_group), g in zip(self._out_items, items):
            if g is None:
                seeds.extend([None] * count)
                continue
            a = np.asarray(g, dtype=float)
            if is_group:
                want = [(count,), (B, count)] if B > 1 or not self._single else [(count,)]
                if a.ndim == 0:
                    a = np.full((B, count), float(a))
                elif a.shape == (count,) and self._single:
                    a = a.reshape(1, count)
                elif a.shape != (B, count):
                    raise TraceError(f"grad_outputs for a group of {count} outputs must be a "
                                     f"number or shape {(B, count)}, got {a.shape}; {want}")
                seeds.extend(a[:, c] for c in range(count))
            else:
                if a.ndim == 0:
                    a = np.full(B, float(a))
                elif a.shape != (B,):
                    raise TraceError(f"grad_outputs entry must be a number or shape ({B},), "
                                     f"got {a.shape}")
                seeds.append(a)
        if all(x is None for x in seeds):
            raise TraceError("grad_outputs leaves every output out: seed at least one")
        return seeds

    def _dead_rows(self, seeded: tuple):
        """For a pattern of seeded outputs: None when every node reaches a seeded output;
        else per group True (no row does), None (all do) or [(grad group, flat indices of the
        contributions of rows that do not)], which backward sets to zero."""
        if all(seeded):
            return None
        cache = self.__dict__.setdefault("_dead_cache", {})
        if seeded in cache:
            return cache[seeded]
        live = [False] * len(self.tape)
        for o, s in zip(self._out_slots, seeded):
            if s:
                live[o] = True
        for ins in reversed(self.tape):
            if live[ins.index]:
                for a in ins.args:
                    live[a] = True
        out = []
        for g in self._groups:
            rows = [live[i] for i in g.nodes]
            if all(rows):
                out.append(None)
            elif not any(rows):
                out.append(True)
            else:
                zero = []
                for edges in g.pos_edges:
                    for pg, sel, dest in edges:
                        r = np.arange(len(g.nodes)) if sel is None else \
                            np.arange(len(g.nodes))[sel]
                        d = np.arange(dest.start, dest.stop, dest.step) \
                            if isinstance(dest, slice) else np.asarray(dest)
                        mask = ~np.asarray(rows)[r]
                        if mask.any():
                            zero.append((pg, d[mask]))
                out.append(zero)
        cache[seeded] = out
        return out

    def _input_grads(self, G: np.ndarray, B: int) -> tuple:
        out, k = [], 0
        for s, leaves in enumerate(self._slots):
            n = len(leaves)
            block = G[k:k + n]
            unused = [j for j in range(n) if (k + j) not in self._input_slot_of.values()]
            if unused:
                block = block.copy()
                block[unused] = 0.0
            if self._slot_groups[s]:
                arr = block.T.copy()
                out.append(arr[0] if self._single else arr)
            else:
                out.append(float(block[0, 0]) if self._single else block[0].copy())
            k += n
        return tuple(out)

    # -- looking at it ---------------------------------------------------------------------
    def listing(self, max_lines: Optional[int] = None) -> str:
        """The tape as text, one instruction per line (inputs, state, constants, operations)."""
        lines = [str(ins) for ins in self.tape]
        outs = ", ".join(f"%{o}" for o in self._out_slots)
        lines.append(f"return {outs}")
        if max_lines is not None and len(lines) > max_lines:
            lines = lines[:max_lines - 1] + [f"... ({len(self.tape)} instructions)"]
        return "\n".join(lines)

    def schedule(self) -> list[tuple[str, int, bool]]:
        """The vectorised groups in run order: (op name, nodes, has a batch axis)."""
        return [(g.op.name, len(g.nodes), g.batched) for g in self._groups]

    def __repr__(self) -> str:
        ops = sum(1 for i in self.tape if i.kind == "op")
        return (f"Program({len(self.input_names)} input slot(s) {self.input_names}, "
                f"{len(self.params)} params, {ops} operations in {len(self._groups)} groups, "
                f"{len(self._out_slots)} output(s), exact={self.exact})")

    # -- checking a traced function against the engine -------------------------------------
    def verify(self, *feeds: ArrayLike, samples: int = 3, rtol: float = 1e-12,
               **named: ArrayLike) -> dict:
        """Re-run the traced function on a few examples of this batch with the engine and
        compare: the graph's structure and constants (a difference means Python control flow
        read the data and was frozen at trace time), then the outputs and parameter
        gradients (to `rtol`). Raises TraceError on a difference; parameters' .grad are left
        as they were, but the program's last run is now one of these examples (run forward
        again before backward). Only programs made by `trace` can be verified (they keep the
        function)."""
        if self._fn is None:
            raise TraceError("verify re-runs the traced function: only programs made by "
                             "trace(fn, ...) keep one (Program.from_graph has no function)")
        if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1:
            raise ValueError(f"samples must be a positive int, got {samples!r}")
        arrays, B, single = self._feed(feeds, named)
        picks = sorted(set(int(round(x)) for x in np.linspace(0, B - 1, min(samples, B))))
        saved = [p.grad for p in self.params]
        worst = 0.0
        try:
            for b in picks:
                example = [a if single else a[b] for a in arrays]
                worst = max(worst, self._verify_one(b, example, rtol))
        finally:
            for p, g in zip(self.params, saved):
                p.grad = g
        return {"examples": picks, "max_rel_err": worst}

    def _verify_one(self, b: int, example: list, rtol: float) -> float:
        fn, slot_groups = self._fn, self._slot_groups
        ph = []
        for s, (name, a) in enumerate(zip(self.input_names, example)):
            if slot_groups[s]:
                ph.append([Value(float(x), f"{name}[{i}]") for i, x in enumerate(a)])
            else:
                ph.append(Value(float(a), name))
        out = fn(*ph)
        try:
            other = Program(out, ph, self.params, self.frozen, self.input_names,
                            allow_unused=True, exact=self.exact)
        except TraceError as e:
            raise TraceError(f"example {b}: the function built a different graph than at trace "
                             f"time ({e}). Python control flow that reads .data is frozen "
                             "when tracing") from None
        diff = _first_difference(self.tape, other.tape, self._out_slots, other._out_slots)
        if diff is not None:
            raise TraceError(f"example {b}: the graph differs from the traced one at {diff}. "
                             "Python control flow that read .data (an if on a Value, a max "
                             "over .data, a data-dependent constant or loop length) was frozen "
                             "at trace time, as under jax.jit: write it branch-free (relu, abs, "
                             "arithmetic) or keep this part on the engine")
        # values and gradients: the engine's backward against this program's replay
        flat = other._outputs
        root = flat[0] if len(flat) == 1 else engine._node(engine.SUM, tuple(flat),
                                                           (1.0,) * len(flat), 0.0)
        for p in self.params:
            p.grad = 0.0
        root.backward()
        want_g = np.array([p.grad for p in self.params])
        want_v = np.array([o.data for o in flat])
        got = self.forward(*example)
        got_v = np.concatenate([np.atleast_1d(np.asarray(x, float)) for x in
                                (got if not self._single_out else (got,))])
        seeds = None if len(flat) == 1 else [
            (1.0 if not is_group else np.ones(count)) for _, count, is_group in self._out_items]
        got_g = self.backward(seeds, write=False).params
        worst = 0.0
        for what, w, g in (("outputs", want_v, got_v), ("parameter gradients", want_g, got_g)):
            err = _rel_err(g, w)
            if err > rtol:
                k = int(np.nanargmax(np.where(np.isnan(g) == np.isnan(w), np.abs(g - w), np.inf)))
                raise TraceError(f"example {b}: replayed {what} differ from the engine's "
                                 f"(relative error {err:.3g} > {rtol:g}; entry {k}: replay "
                                 f"{g[k]!r}, engine {w[k]!r})")
            worst = max(worst, err)
        return worst

    # -- export ----------------------------------------------------------------------------
    def to_torch(self, dtype=None):
        """This program as a torch.nn.Module of tensors (see static_torch.TorchProgram)."""
        from .static_torch import TorchProgram
        return TorchProgram(self, dtype=dtype)


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max(|want|, tiny), nan-aware (nan on both sides agrees)."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    if got.shape != want.shape:
        return math.inf
    both_nan = np.isnan(got) & np.isnan(want)
    same = (got == want) | both_nan
    if same.all():
        return 0.0
    with np.errstate(all="ignore"):
        err = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(float).tiny)
    err = np.where(same, 0.0, err)
    err = np.where(np.isnan(err), math.inf, err)
    return float(err.max())


def _first_difference(a: list, b: list, outs_a: list, outs_b: list) -> Optional[str]:
    for x, y in zip(a, b):
        same_const = x.kind != "const" or (x.value == y.value or (x.value != x.value and
                                                                   y.value != y.value))
        if x.kind != y.kind or x.op is not y.op or x.args != y.args or not same_const:
            return f"instruction %{x.index}: traced `{x}`, now `{y}`"
    if len(a) != len(b):
        return f"the length of the tape: traced {len(a)} instructions, now {len(b)}"
    if outs_a != outs_b:
        return f"the outputs: traced {outs_a}, now {outs_b}"
    return None


def _placeholder(x, name: str):
    """A fed example value as a placeholder leaf (a number) or a list of them (a sequence)."""
    if isinstance(x, Value):
        raise TypeError(f"trace: example for {name!r} must be numbers, not a Value (trace makes "
                        "the placeholder leaves itself)")
    a = _real_array(x, f"trace: example for {name!r}") if not isinstance(x, numbers.Real) \
        else None
    if a is None:
        return Value(float(x), name)
    if a.ndim == 0:
        return Value(float(a), name)
    if a.ndim == 1 and a.size:
        return [Value(float(v), f"{name}[{i}]") for i, v in enumerate(a)]
    raise TraceError(f"trace: example for {name!r} must be a number or a non-empty 1-D "
                     f"sequence of numbers (one example, no batch axis), got shape {a.shape}")


def trace(fn: Callable, *examples: Any, params: Optional[Sequence[Value]] = None,
          frozen: Sequence[Value] = (), names: Optional[Sequence[str]] = None,
          allow_unused: bool = False, exact: bool = True) -> Program:
    """Call fn once on placeholder leaves made from `examples` and compile what it built.

    Each example is a number (fn gets one Value) or a 1-D sequence (fn gets a list of Values,
    fed later as one array with the examples on the leading axis). fn returns a Value, a number
    or a (nested) sequence of them. params/frozen/allow_unused/exact: as Program.from_graph;
    names defaults to fn's argument names. Python control flow inside fn that reads `.data` is
    frozen at this call (as with jax.jit); `Program.verify` detects it on real examples.
    """
    if not callable(fn):
        raise TypeError(f"trace needs a function, got {type(fn).__name__}: {fn!r}")
    if not engine.is_grad_enabled():
        raise TraceError("trace needs the graph to be recorded, but it is called inside "
                         "no_grad(): leave the no_grad block first")
    if names is None:
        names = _arg_names(fn, len(examples))
    elif len(names) != len(examples):
        raise TraceError(f"names has {len(names)} entries for {len(examples)} examples")
    ph = [_placeholder(x, n) for x, n in zip(examples, names)]
    out = fn(*ph)
    if out is None:
        raise TraceError(f"trace: {getattr(fn, '__name__', 'fn')} returned None; it must return "
                         "the Value(s) to compute")
    return Program(out, ph, params, frozen, names, allow_unused, exact, _fn=fn)


def _arg_names(fn: Callable, n: int) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [f"input{i}" for i in range(n)]
    names = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            break
    names = names[:n]
    names += [f"input{i}" for i in range(len(names), n)]
    if len(set(names)) != n:
        names = [f"input{i}" for i in range(n)]
    return names
