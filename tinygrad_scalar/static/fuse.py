"""The fusion pass: neurons of one layer become one matrix product.

A neuron, as the scalar graph holds it, is a sum (one n-ary `sum` node, a chain of `+`, or both)
whose terms are products `w * x` of a state leaf w (a parameter or frozen leaf) and a value x with
a batch axis, plus at most one state leaf (the bias) and any constants (the `0` that Python's
`sum()` starts with). Nothing here knows about `nn`: `Value.sum(w*x ...) + b`,
`sum(w*x for ...) + b` and `nn.Neuron` all make this shape. Neurons that read the same values x
(in any order) form a layer; a layer of m neurons over n values is Z = W X + b, W an (m, n)
matrix gathered from the parameters.

The pass rewrites the tape and plans it again (plan.Plan, unchanged): the products and the
partial sums inside a neuron disappear, each layer becomes one `dense` node (reading the layer's
inputs, weights and biases) and each neuron one `row` node (reading the dense node), so the
plan's groups, rows and gradient slots come out as before, with one contribution per input of a
layer instead of one per neuron. `fused_runner` runs the dense groups as matrix products.

Only in the fast mode (exact=False): a matrix product sums in its own order, so values and
gradients agree with the engine to rounding (about 1e-15 relative), not bit for bit.
"""
from __future__ import annotations

import copy
from typing import NamedTuple, Optional

from .. import engine
from ..engine import Op
from .plan import Plan
from .tape import Instr, Tape

__all__ = ["Layer", "Fused", "find_layers", "fuse", "calls_per_step", "summary"]

_SUMS = (engine.ADD, engine.SUM)
_STATE = ("param", "frozen")


class Layer(NamedTuple):
    """Neurons that read the same values: roots (tape indices of the neurons' sums), inputs
    (tape indices of the values x, sorted), weights (per neuron, the state leaf for each input),
    biases (per neuron, a state leaf; or None for a layer without), consts (per neuron, the sum
    of its constant terms) and absorbed (the products and partial sums the layer replaces)."""
    roots: tuple
    inputs: tuple
    weights: tuple
    biases: Optional[tuple]
    consts: tuple
    absorbed: frozenset

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.roots), len(self.inputs)


def _neuron(root: int, instrs: list, uses: list, batched: list):
    """(terms [(x, w)], bias leaves, constants, absorbed nodes) of the sum at `root`, or None
    when some term is not a weight times a batched value, a state leaf or a constant."""
    terms, bias, consts, absorbed = [], [], [], []
    stack = [root]
    while stack:
        k = stack.pop()
        ins = instrs[k]
        private = uses[k] == 1  # used once, and not an output: it may disappear
        if ins.kind == "op" and ins.op in _SUMS and (k == root or private):
            if k != root:
                absorbed.append(k)
            stack.extend(ins.args)
        elif ins.kind == "op" and ins.op is engine.MUL and private:
            a, b = ins.args
            if instrs[a].kind in _STATE and batched[b]:
                terms.append((b, a))
            elif instrs[b].kind in _STATE and batched[a]:
                terms.append((a, b))
            else:
                return None
            absorbed.append(k)
        elif ins.kind in _STATE:
            bias.append(k)
        elif ins.kind == "const":
            consts.append(ins.value)
        else:
            return None
    if len(bias) > 1 or len({x for x, _ in terms}) != len(terms):
        return None
    return terms, bias, consts, absorbed


def _term_ok(a: int, instrs: list, uses: list, batched: list, ok: list) -> bool:
    ins = instrs[a]
    if ins.kind in _STATE or ins.kind == "const":
        return True
    if ins.kind != "op" or uses[a] != 1:
        return False
    if ins.op in _SUMS:
        return ok[a]
    if ins.op is engine.MUL:
        x, y = ins.args
        return (instrs[x].kind in _STATE and batched[y]) or (instrs[y].kind in _STATE
                                                             and batched[x])
    return False


def find_layers(tape: Tape, min_terms: int = 2) -> list[Layer]:
    """The layers of the tape: neurons (sums of at least `min_terms` products) grouped by the
    values they read. A sum that does not match is left alone (and its parts may still be
    neurons: the search runs from the outputs down)."""
    instrs = tape.instrs
    uses = [0] * len(instrs)
    batched = [False] * len(instrs)
    for ins in instrs:
        for a in ins.args:
            uses[a] += 1
        batched[ins.index] = ins.kind == "input" or (
            ins.kind == "op" and any(batched[a] for a in ins.args))
    for o in tape.out_slots:
        uses[o] += 2  # an output keeps its value: never absorbed
    # bottom-up first: may the sum at k flatten into weight terms, state and constants? (so a
    # long chain of + over a term that does not match is rejected once, not once per link)
    ok = [False] * len(instrs)
    for ins in instrs:
        if ins.kind == "op" and ins.op in _SUMS:
            ok[ins.index] = all(_term_ok(a, instrs, uses, batched, ok) for a in ins.args)
    taken: set = set()
    by_inputs: dict = {}
    budget = 4 * len(instrs) + 1000  # flattening work: linear in the tape, whatever the graph
    for ins in reversed(instrs):
        k = ins.index
        if ins.kind != "op" or not ok[k] or k in taken:
            continue
        found = _neuron(k, instrs, uses, batched)
        budget -= 1 + (0 if found is None else len(found[3]))
        if budget < 0:
            break  # a pathological graph: what was found so far is fused, the rest is not
        if found is None or len(found[0]) < min_terms:
            continue
        terms, bias, consts, absorbed = found
        taken.update(absorbed)
        terms.sort()
        key = (tuple(x for x, _ in terms), bool(bias))
        by_inputs.setdefault(key, []).append((k, tuple(w for _, w in terms),
                                             bias[0] if bias else None, sum(consts),
                                             absorbed))
    layers = []
    for (xs, has_bias), neurons in by_inputs.items():
        neurons.sort()
        layers.append(Layer(tuple(n[0] for n in neurons), xs, tuple(n[1] for n in neurons),
                            tuple(n[2] for n in neurons) if has_bias else None,
                            tuple(float(n[3]) for n in neurons),
                            frozenset(a for n in neurons for a in n[4])))
    layers.sort(key=lambda L: L.roots[0])
    return layers


def _never(*xs):
    raise RuntimeError("a fused layer is run by the fused runner, never element by element")


class Fused:
    """The fused program: plan (a Plan of the rewritten tape), layers, and per layer the ids of
    its dense and row groups in plan.groups (dense_gid, row_gid) and new tape indices of its
    rows, neuron by neuron (row_nodes)."""

    def __init__(self, tape: Tape, layers: list[Layer]):
        self.layers = layers
        instrs = tape.instrs
        absorbed = set().union(*(L.absorbed for L in layers))
        dense_ops, row_ops, first, neuron = {}, {}, {}, {}
        for li, L in enumerate(layers):
            m, n = L.shape
            dense_ops[li] = Op("dense", "@", -1, _never, _never,
                               doc=f"layer {li}: {m} neurons x {n} inputs")
            row_ops[li] = Op("row", "row", 1, _never, _never)
            first[L.roots[0]] = li
            for j, r in enumerate(L.roots):
                neuron[r] = (li, j)
        order = [ins for ins in instrs if ins.kind != "op"] + \
                [ins for ins in instrs if ins.kind == "op" and ins.index not in absorbed]
        new: dict = {}
        out: list = []
        dense_at: dict = {}
        self.row_nodes = [[None] * len(L.roots) for L in layers]
        for ins in order:
            k = ins.index
            if k in first:
                li = first[k]
                L = layers[li]
                args = [new[x] for x in L.inputs] + [new[w] for ws in L.weights for w in ws]
                if L.biases is not None:
                    args += [new[b] for b in L.biases]
                dense_at[li] = len(out)
                out.append(Instr(len(out), "op", dense_ops[li], tuple(args), f"layer {li}", 0.0))
            new[k] = len(out)
            if k in neuron:
                li, j = neuron[k]
                self.row_nodes[li][j] = len(out)
                out.append(Instr(len(out), "op", row_ops[li], (dense_at[li],), ins.label,
                                 ins.value))
            else:
                out.append(ins._replace(index=len(out), args=tuple(new[a] for a in ins.args)))
        rewritten = copy.copy(tape)
        rewritten.instrs = out
        rewritten.out_slots = [new[o] for o in tape.out_slots]
        rewritten.input_row = {new[i]: k for i, k in tape.input_row.items()}
        rewritten.param_row = {new[i]: k for i, k in tape.param_row.items()}
        rewritten.frozen_row = {new[i]: k for i, k in tape.frozen_row.items()}
        self.plan = Plan(rewritten)
        gid_of = {id(g.op): gid for gid, g in enumerate(self.plan.groups)}
        self.dense_gid = [gid_of[id(dense_ops[li])] for li in range(len(layers))]
        self.row_gid = [gid_of[id(row_ops[li])] for li in range(len(layers))]
        #: tape indices (of the original tape) the fused plan no longer computes
        self.absorbed = frozenset(absorbed)


def fuse(tape: Tape, min_terms: int = 2) -> Optional[Fused]:
    """The fused program of a tape, or None when it has no layer to fuse."""
    layers = find_layers(tape, min_terms)
    return Fused(tape, layers) if layers else None


def calls_per_step(plan: Plan, fused: Optional[Fused] = None) -> tuple[int, int]:
    """About how many NumPy calls one forward and one backward issue (the Python work per step
    grows with these, not with the batch): per group its gathers by index, the call itself and
    the domain test; backward the sums over gradient slots and one write per parameter
    buffer; a fused layer: its gathers, one product and the bias forward, two products (and the
    bias sum) backward."""
    dense = {} if fused is None else {gid: li for li, gid in enumerate(fused.dense_gid)}
    rows = set() if fused is None else set(fused.row_gid)
    fwd = bwd = 0
    for gid, g in enumerate(plan.groups):
        if gid in dense:
            L = fused.layers[dense[gid]]
            fwd += 4 + (L.biases is not None)
            bwd += 3 + (L.biases is not None)
            continue
        if gid in rows:
            bwd += plan.fan[gid] - 1
            continue
        call = g.arity - 1 if g.op is engine.SUM else 1  # a sum: one addition per term
        fwd += call + sum(not isinstance(idx, slice) for _, idx in g.gathers) + \
            (g.op.bad is not None)
        bwd += plan.fan[gid] - 1 + 1 + sum(len(e) for e in g.edges)
    return fwd, bwd + plan.fan[plan.PARAMS] + plan.fan[plan.INPUTS] - 2


def summary(plan: Plan, fused: Optional[Fused], exact: bool) -> str:
    """What the compiler did, as text: the groups in run order, the fused layers, and the NumPy
    calls per step before and after fusion."""
    tape = plan.tape
    ops = sum(1 for i in tape.instrs if i.kind == "op")
    lines = [f"{ops} scalar operations, {len(tape.params)} params, "
             f"{len(plan.groups)} elementwise groups"]
    f0, b0 = calls_per_step(plan)
    if fused is None:
        why = ("exact=True replays the engine's operations one for one" if exact else
               "no layer matched (a neuron is a sum of >= 2 products weight * value)")
        lines.append(f"fused layers: none ({why})")
        lines.append(f"NumPy calls per step: about {f0} forward + {b0} backward")
        shown, fp = plan, None
    else:
        fp = fused.plan
        f1, b1 = calls_per_step(fp, fused)
        n_abs = len(fused.absorbed) + sum(len(L.roots) for L in fused.layers)
        lines.append(f"fused layers: {len(fused.layers)} (replacing {n_abs} scalar operations), "
                     f"{len(fp.groups)} groups after fusion")
        for li, L in enumerate(fused.layers):
            m, n = L.shape
            lines.append(f"  layer {li}: {m} neuron(s) x {n} input(s)"
                         f"{' + bias' if L.biases is not None else ''} -> Z = W @ X"
                         f"{' + b' if L.biases is not None else ''}, W ({m}, {n}), X ({n}, B)")
        lines.append(f"NumPy calls per step: about {f1} forward + {b1} backward "
                     f"(unfused: {f0} + {b0})")
        shown = fp
    lines.append("groups in run order:")
    dense = {} if fp is None else {gid: li for li, gid in enumerate(fused.dense_gid)}
    for gid, g in enumerate(shown.groups):
        if gid in dense:
            m, n = fused.layers[dense[gid]].shape
            lines.append(f"  {gid:3d}  matmul   layer {dense[gid]}: ({m}, {n}) @ ({n}, B)")
        else:
            lines.append(f"  {gid:3d}  {g.op.name:8s} {len(g.nodes):5d} node(s)"
                         f"{'' if g.batched else '  (no batch axis)'}")
    return "\n".join(lines)
