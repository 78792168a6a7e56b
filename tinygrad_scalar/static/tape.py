"""The tape: a traced graph as a flat list of instructions, with the role of every leaf.

`Tape` walks the graph below the outputs once, in the engine's topological order, and writes one
`Instr` per node. Leaves get a role: fed (an input), trained state (a param), state without
gradient (frozen) or a baked-in constant. Every mistake in those roles (a fed interior node, a
leaf listed twice, a leaf nobody claims) is a `TraceError` here, before anything is scheduled.
A Tape is built once and never changed afterwards; the plan and the backends only read it.
"""
from __future__ import annotations

import numbers
from contextlib import contextmanager
from typing import Iterator, NamedTuple, Optional, Sequence

from .. import checks, engine
from ..engine import Op, Value, topological_order

__all__ = ["TraceError", "Instr", "Tape", "describe", "joined", "engine_order",
           "refusing_branches"]


class TraceError(ValueError):
    """A graph that cannot be replayed as traced: a mis-fed input, an unused leaf, or a graph
    whose structure depended on the data it was traced with."""


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


def describe(v: Value) -> str:
    return f"{v!r}" if not v.label else f"{v.label!r} ({v!r})"


def _leaves(x, what: str) -> list:
    """An input slot: a Value, or a sequence of Values (fed as one array, last axis)."""
    items = checks.values(x, what, allow_empty=True)
    if not items:
        raise TraceError(f"{what} is an empty sequence: an input slot needs at least one Value")
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


def _names(names, slots) -> list[str]:
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


def joined(outs: list) -> Value:
    """One root for several outputs: a sum node over them (built from parts, so it neither
    computes nor checks their sum), whose backward is that of every output seeded with 1."""
    if len(outs) == 1:
        return outs[0]
    return engine.node(engine.SUM, tuple(outs), (1.0,) * len(outs), 0.0)


def engine_order(outs: list) -> list:
    """The engine's topological order below the outputs; several outputs: that of a sum over
    them (what `Value.sum(outs).backward()` walks), without the sum itself."""
    topo = topological_order(joined(outs))
    return topo if len(outs) == 1 else topo[:-1]


class Tape:
    """The graph below `outputs` as instructions, with every leaf's role checked.

    Attributes (read-only after construction): instrs, outputs (the flat output Values),
    out_slots, out_items ((start, count, is_group) per output item), single_out, slots (the
    fed leaves per input slot), slot_groups (slot fed as a (k,) array), input_names, params,
    frozen, input_row / param_row / frozen_row (tape index -> row of the leaf in its store),
    n_input_leaves.
    """

    def __init__(self, outputs, inputs=(), params=None, frozen=(), names=None,
                 allow_unused: bool = False):
        flat, self.out_items, self.single_out = _output_structure(outputs)
        inputs = [inputs] if isinstance(inputs, Value) else list(inputs)
        slots = [_leaves(x, f"inputs[{i}]") for i, x in enumerate(inputs)]
        self.slot_groups = [not isinstance(x, Value) for x in inputs]
        self.slots = slots
        topo = engine_order(flat)
        index = {v: i for i, v in enumerate(topo)}
        self.outputs = flat
        fed = self._check_fed(slots, index, allow_unused)
        frozen, frozen_set = self._check_frozen(frozen, fed)
        params = self._check_params(params, topo, index, fed, frozen_set, allow_unused)
        for v in frozen:
            if v not in index and not allow_unused:
                raise TraceError(f"frozen leaf {describe(v)} is never used by the outputs")
        self.params: list[Value] = params
        self.frozen: list[Value] = frozen
        self.input_names = _names(names, slots)
        param_pos = {p: i for i, p in enumerate(params)}
        instrs = []
        for i, v in enumerate(topo):
            if v.is_leaf:
                kind = ("const" if v.is_constant else "input" if v in fed else
                        "param" if v in param_pos else "frozen")
                instrs.append(Instr(i, kind, None, (), v.label or "", v.data))
            else:
                instrs.append(Instr(i, "op", v.op, tuple(index[p] for p, _ in v.edges()),
                                    v.label or "", v.data))
        self.instrs: list[Instr] = instrs
        self.out_slots = [index[o] for o in flat]
        self.input_row: dict = {}
        k = 0
        for leaves in slots:
            for v in leaves:
                if v in index:
                    self.input_row[index[v]] = k
                k += 1
        self.n_input_leaves = k
        self.param_row = {index[p]: i for i, p in enumerate(params) if p in index}
        self.frozen_row = {index[v]: len(params) + i for i, v in enumerate(frozen) if v in index}

    def _check_fed(self, slots: list, index: dict, allow_unused: bool) -> dict:
        fed: dict = {}
        for s, leaves in enumerate(slots):
            for j, v in enumerate(leaves):
                at = f"[{s}]" + (f"[{j}]" if self.slot_groups[s] else "")
                where = "inputs" + at
                if not v.is_leaf:
                    raise TraceError(f"{where} is {describe(v)}, computed by "
                                     f"'{v.op.name}': only leaves can be fed")
                if v.is_constant:
                    raise TraceError(f"{where} is the constant {v.data!r}: a number that "
                                     "entered the graph is baked in and cannot be fed; use a "
                                     "Value leaf as the placeholder")
                if v in fed:
                    raise TraceError(f"{where} is the same Value as inputs{fed[v]}: each leaf "
                                     "is fed once")
                fed[v] = at
                if v not in index and not allow_unused:
                    raise TraceError(f"{where} {describe(v)} is never used: the outputs do "
                                     "not depend on it (a placeholder the function ignores, or "
                                     "a different Value than the one the graph was built from)."
                                     " Pass allow_unused=True to feed it anyway")
        return fed

    @staticmethod
    def _check_frozen(frozen: Sequence, fed: dict) -> tuple[list, set]:
        frozen = list(frozen)
        frozen_set = set()
        for i, v in enumerate(frozen):
            if not isinstance(v, Value):
                raise TypeError(f"frozen[{i}] must be a Value, got {type(v).__name__}")
            if not v.is_leaf or v.is_constant or v in fed:
                raise TraceError(f"frozen[{i}] {describe(v)} must be a non-constant leaf "
                                 "that is not fed")
            frozen_set.add(v)
        return frozen, frozen_set

    @staticmethod
    def _check_params(params, topo, index, fed, frozen_set, allow_unused) -> list:
        if params is None:
            return [v for v in topo if v.is_leaf and not v.is_constant and v not in fed
                    and v not in frozen_set]
        if isinstance(params, Value):
            raise TypeError("params must be a sequence of Values (e.g. model.parameters()),"
                            " got a single Value: wrap it in a list")
        params = list(params)
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, Value):
                raise TypeError(f"params[{i}] must be a Value, got {type(p).__name__}: {p!r}")
            if not p.is_leaf:
                raise TraceError(f"params[{i}] {describe(p)} is computed by "
                                 f"'{p.op.name}': only leaves can be parameters")
            if p.is_constant:
                raise TraceError(f"params[{i}] is the constant {p.data!r}: numbers that "
                                 "entered the graph are baked in")
            if p in fed or p in frozen_set:
                raise TraceError(f"params[{i}] {describe(p)} is also "
                                 f"{'an input' if p in fed else 'frozen'}")
            if p in seen:
                raise TraceError(f"params[{i}] {describe(p)} appears twice")
            seen.add(p)
            if p not in index and not allow_unused:
                raise TraceError(f"params[{i}] {describe(p)} is never used by the outputs;"
                                 " pass allow_unused=True if that is intended")
        stray = [v for v in topo if v.is_leaf and not v.is_constant and v not in fed
                 and v not in seen and v not in frozen_set]
        if stray:
            shown = ", ".join(describe(v) for v in stray[:5])
            raise TraceError(f"{len(stray)} leaf(s) of the graph are neither inputs, params, "
                             f"frozen nor constants: {shown}{' ...' if len(stray) > 5 else ''}."
                             " List them in params= (trained), frozen= (state without "
                             "gradient) or inputs= (fed)")
        return params

    def listing(self, max_lines: Optional[int] = None) -> str:
        """The tape as text, one instruction per line (inputs, state, constants, operations)."""
        lines = [str(ins) for ins in self.instrs]
        lines.append("return " + ", ".join(f"%{o}" for o in self.out_slots))
        if max_lines is not None and len(lines) > max_lines:
            lines = lines[:max_lines - 1] + [f"... ({len(self.instrs)} instructions)"]
        return "\n".join(lines)


def _fed_leaves(placeholders) -> dict:
    out = {}
    for p in placeholders:
        for v in ([p] if isinstance(p, Value) else p):
            out[v] = v.label or "an input"
    return out


def _branch_error(v: Value, other, what: str, name: str) -> TraceError:
    shown = f"bool({describe(v)})" if what == "bool" else \
        f"{describe(v)} {what} {describe(other) if isinstance(other, Value) else repr(other)}"
    return TraceError(
        f"while tracing, {shown} compares a Value that depends on the traced input {name!r}: "
        "a Python if, max, min or sort on it would take one branch now and freeze it into the "
        "program, wrong for examples on the other side (jax.jit refuses this too). Write it "
        "branch-free: max(x, 0) is x.relu(), max(a, b, ...) is Value.max([a, b, ...]), "
        "|x| is abs(x); "
        "'f(x) if x > 0 else g(x)' with f(0) = g(0) = 0 is f(x.relu()) + g(x - x.relu()). "
        "Comparisons on parameters and constants alone are fine")


@contextmanager
def refusing_branches(placeholders: Sequence) -> Iterator[None]:
    """Inside, a comparison or bool() of a Value that depends on one of the placeholders
    raises TraceError (the branch would be frozen). Values that depend on parameters or
    constants only compare as usual. Costs nothing outside a trace."""
    fed = _fed_leaves(placeholders)

    def check(v: Value, other, what: str) -> None:
        for side in (v, other):
            if isinstance(side, Value):
                for node in topological_order(side):
                    if node in fed:
                        raise _branch_error(v, other, what, fed[node])
    with engine.on_branch(check):
        yield
