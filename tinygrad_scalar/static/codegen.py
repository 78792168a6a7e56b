"""Straight-line code for a fused plan: each sweep written once as Python source and compiled.

The interpreting runner walks the plan at every step: per group it looks up the rule, builds
the argument list, loops over the edges and tests what kind of local derivative it got. Once
the layers are matrix products, that bookkeeping (10 to 25 us per group) costs more than the
arithmetic. `Generated` writes the same sweeps once as source: a line or two of NumPy per
group, every row range, index array and view of the buffers bound once per batch size, so a
step only runs the calls. `Program.source()` prints it: the scalar graph as the handful of
matrix products it became.

What runs is the op table's: each group's value form (`Op.vf`, or the in-place ufunc of
numpy_backend.IN_PLACE), domain predicate (`Op.bad`) and derivative (`Op.vdf or Op.df`; a
derivative of add, sub, neg and sum, the same numbers whatever the inputs, is asked once at
generation and written in). Lowered by hand, as one-line lowerings of this backend: a sum or
max whose terms are evenly spaced rows as one reduction (max's backward as argmax, which
picks the first of equal ones as the engine's rule does), relu
forward as `maximum` (then `+ 0.0`, so -0.0 becomes 0.0 as the engine's relu, unless a probe at
import finds that NumPy's maximum already gives +0.0 there and keeps nan), and backward as
the mask `out > 0` times the gradient: this code runs only after a forward whose values are
all finite (else the plain replay takes the batch), where that mask is relu's derivative
exactly. Under an inf gradient the engine's relu passes 0 on its flat part where the mask's
0 * inf is nan; a nan never disappears from a sum or product, so the runner checks that the
gradients came out finite and otherwise sweeps again with the interpreting runner.

Generated: the forward, and the backward reduced over the batch (what CompiledStep runs, its
scores output unseeded but on the seeded path). Per-example gradients, unseeded outputs with
nodes that reach no seeded output, and inputs without a vector form go through the
interpreting runner, which reads and writes the same buffers.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import engine
from .numpy_backend import IN_PLACE, reduce_over_batch
from .plan import positions
from .writer import Writer, slice_source

__all__ = ["Generated", "NoVectorForm", "DomainError"]


class NoVectorForm(Exception):
    """An op's value form has no vector form for these inputs: the interpreting runner (which
    runs it per element) takes over for good."""


class DomainError(Exception):
    """An input is outside an op's domain: the plain replay reruns the batch and names it."""


def _probe_maximum() -> bool:
    """Does np.maximum(a, 0.0) give +0.0 for -0.0 and keep nan, as the engine's relu, at
    every size (SIMD loops and their tails)? Then relu's forward is that one call."""
    for n in (1, 3, 7, 8, 16, 17, 33, 100, 1025):
        a = np.linspace(-1.0, 1.0, n)
        a[::2] = -0.0
        if n > 2:
            a[1] = np.nan
        for x in (a, a.reshape(-1, 1)):
            r = np.maximum(x, 0.0)
            if np.signbit(r[~np.isnan(r)]).any() or np.isnan(r).sum() != np.isnan(x).sum():
                return False
    return True


_MAXIMUM_IS_RELU = _probe_maximum()

#: the n-ary ops whose terms, when they are evenly spaced rows, reduce in one call
_REDUCE = {engine.SUM: "add", engine.MAX: "maximum"}


#: the ops whose local derivatives are the same numbers whatever the inputs (a sum's 1s, a
#: difference's 1 and -1): a property no probe of the rule can prove (max's rule, asked at
#: placeholder inputs, also answers with numbers), so it is listed here, per op
_CONSTANT_LOCALS = frozenset({engine.ADD, engine.SUB, engine.NEG, engine.SUM})


def _constant_locals(op, arity: int) -> Optional[tuple]:
    """The local derivatives of an op listed in _CONSTANT_LOCALS, asked of its rule once (add's
    (1.0, 1.0)); None for every other op (its rule runs at every step)."""
    if op not in _CONSTANT_LOCALS:
        return None
    locs = op.df(*([None] * (arity + 1)))
    if isinstance(locs, tuple) and len(locs) == arity and all(type(v) is float for v in locs):
        return locs
    return None


class Generated:
    """The generated sweeps of a dense runner (fused_runner): `views(run)` binds a run's buffers
    once, `forward(R, C)` and `backward(R, C, inputs)` run them; `source` is the code."""

    def __init__(self, runner):
        plan = runner.plan
        self.plan = plan
        w = Writer({"reduce_over_batch": reduce_over_batch, "DomainError": DomainError,
                    "NoVectorForm": NoVectorForm})
        dense = {L.gid: L for L in runner.layers}
        rows = {L.rgid: L for L in runner.layers}
        for gid, g in enumerate(plan.groups):
            if gid in dense:
                self._dense_forward(w, gid, dense[gid])
            elif gid not in rows:
                self._forward(w, gid, g)
        for gid in range(len(plan.groups) - 1, -1, -1):
            g = plan.groups[gid]
            if gid in dense:
                self._dense_backward(w, gid, dense[gid])
            else:
                self._grad(w, gid)
                if gid not in rows:
                    self._backward(w, gid, g)
        for gid, buf in ((plan.INPUTS, "Gb"), (plan.PARAMS, "P3")):
            pad = "    " if gid == plan.INPUTS else ""
            if gid == plan.INPUTS and plan.fan[gid] > 1:
                w.bwd.append("if inputs:")
            for t in range(1, plan.fan[gid]):
                b = f"{buf}[{gid}]" if buf == "Gb" else buf
                s0, st = w.view(f"{b}[0]"), w.view(f"{b}[{t}]")
                w.bwd.append(f"{pad}np.add({s0}, {st}, out={s0})")
        names = [n for n, _ in w.views]
        unpack = f"    ({', '.join(names)},) = R\n" if names else ""
        self.source = (
            "def views(V, S, S0, P1, P3, Gb, Gf, T):\n"
            f"    return ({''.join(e + ', ' for _, e in w.views)})\n\n"
            "def forward(R, C):\n" + unpack +
            "".join(f"    {s}\n" for s in w.fwd) + "    return None\n\n"
            "def backward(R, C, inputs):\n" + unpack +
            "".join(f"    {s}\n" for s in w.bwd) + "    return None\n")
        ns = dict(w.consts)
        exec(compile(self.source, "<tinygrad_scalar generated replay>", "exec"), ns)
        self._views, self.forward, self.backward = ns["views"], ns["forward"], ns["backward"]
        self.consts = w.consts

    def views(self, run) -> tuple:
        """The views and buffers the code reads, bound to this run's arrays (once per run)."""
        return self._views(run.V, run.S, run.S[:, 0], run.pbuf.reshape(-1), run.pbuf,
                           run.gbuf, run.flat, run.take)

    # -- forward ---------------------------------------------------------------------------
    def _kind(self, b: bool, idx) -> str:
        """What rows idx of V (b) or S hold, for a readable name: fed inputs, parameters,
        constants, or computed values."""
        plan = self.plan
        rows = positions(idx)
        if b:
            return "input" if rows.max() < plan.tape.n_input_leaves else "t"
        if rows.max() < len(plan.tape.params):
            return "param"
        if plan.n_state <= rows.min() and rows.max() < plan.n_state + len(plan.const_values):
            return "const"
        return "t"

    def _arg(self, w: Writer, gid: int, j: int, b: bool, idx) -> str:
        src = "V" if b else "S"
        hint = f"{self._kind(b, idx)}{gid}_{j}"
        if isinstance(idx, slice):
            return w.view(f"{src}[{slice_source(idx)}]", hint)
        buf = w.view(f"T[{gid}][{j}]", hint)
        w.fwd.append(f"{w.view(src)}.take({w.const(idx)}, 0, {buf}, 'clip')")
        return buf

    def _forward(self, w: Writer, gid: int, g) -> None:
        op = g.op
        if op.vf is None:
            raise NoVectorForm(op.name)
        args = [self._arg(w, gid, j, b, idx) for j, (b, idx) in enumerate(g.gathers)]
        a = ", ".join(args)
        dest = w.view(f"{'V' if g.batched else 'S'}[{g.start}:{g.stop}:1]", f"v{gid}")
        w.fwd.append(f"# group {gid}: {op.name} x {len(g.nodes)}")
        if op.bad is not None:
            w.fwd.append(f"if {w.const(op.bad, 'bad')}({a}).any(): raise DomainError")
        ufunc = IN_PLACE.get(op)
        reduce = _REDUCE.get(op)
        stacked = self._stacked(w, g) if reduce is not None else None
        if stacked is not None:  # the terms are evenly spaced rows: one reduction
            w.fwd.append(f"np.{reduce}.reduce({stacked}, 0, out={dest})")
        elif ufunc is not None:
            w.fwd.append(f"np.{ufunc.__name__}({a}, out={dest})")
        elif op is engine.RELU:
            w.fwd.append(f"np.maximum({a}, 0.0, out={dest})" + (
                "" if _MAXIMUM_IS_RELU else f"; np.add({dest}, 0.0, out={dest})"))
        else:
            w.fwd.append(f"o = {w.const(op.vf, 'vf')}({a})")
            w.fwd.append("if o is None: raise NoVectorForm")
            w.fwd.append(f"{dest}[...] = o")
        w.fwd.append(f"C[{gid}] = (({a},), None)")

    @staticmethod
    def _rows(w: Writer, buf: str, idx: list, n: int) -> Optional[str]:
        """k slices of n rows of buf each, with one step and at evenly spaced starts, as one
        (k, n, B) view; else None."""
        if len(idx) < 2 or not all(isinstance(i, slice) for i in idx):
            return None
        steps = {i.step or 1 for i in idx}
        starts = [i.start for i in idx]
        D = starts[1] - starts[0]
        if len(steps) != 1 or any(b - a != D for a, b in zip(starts, starts[1:])):
            return None
        st = steps.pop()
        return w.view(f"as_strided({buf}[{starts[0]}:], ({len(idx)}, {n}, {buf}.shape[1]), "
                      f"({D} * {buf}.strides[0], {st} * {buf}.strides[0], {buf}.strides[1]))")

    def _stacked(self, w: Writer, g) -> Optional[str]:
        """A sum or max group's k terms as one (k, rows, B) view, when they are evenly spaced
        rows of one store; else None. Only where the op's vector form takes k terms (not the
        long sums the engine adds exactly)."""
        k = len(g.gathers)
        kinds = {b for b, _ in g.gathers}
        if k < 2 or len(kinds) != 1 or g.op.vf(*[np.zeros(1)] * k) is None:
            return None
        return self._rows(w, "V" if kinds.pop() else "S", [i for _, i in g.gathers],
                          len(g.nodes))

    def _stacked_dest(self, w: Writer, g) -> Optional[str]:
        """The gradient destinations of a group's k inputs as one (k, rows, B) view, when each
        input has one edge, all into one group's buffer, as evenly spaced rows; else None."""
        plan = self.plan
        edges = [e[0] for e in g.edges if len(e) == 1]
        if len(edges) != len(g.edges) or any(sel is not None for _, sel, _ in edges):
            return None
        pgs = {pg for pg, _, _ in edges}
        if len(pgs) != 1 or pgs & {plan.INPUTS, plan.PARAMS}:
            return None
        return self._rows(w, f"Gf[{pgs.pop()}]", [d for _, _, d in edges], len(g.nodes))

    def _dense_forward(self, w: Writer, gid: int, L) -> None:
        plan = self.plan
        w.fwd.append(f"# group {gid}: layer, ({L.m}, {L.n}) @ ({L.n}, B)")
        li = L.index
        if isinstance(L.x, slice):
            X = w.view(f"V[{slice_source(L.x)}]", f"x{li}")
        else:
            X = w.buffer(f"np.empty(({L.n}, V.shape[1]))", f"x{li}")
            w.fwd.append(f"{w.view('V')}.take({w.const(L.x)}, 0, {X}, 'clip')")
        W, buf = w.matrix("S0", L.w, L.m, L.n, f"w{li}")
        if W is None:
            W = "W"
            w.fwd.append(f"W = {w.view('S0')}.take({w.const(L.w)}).reshape({L.m}, {L.n})")
        elif buf is not None:
            w.fwd.append(f"{buf}[...] = {W}")
            W = buf
        rg = plan.groups[L.rgid]
        Z = w.view(f"V[{rg.start}:{rg.stop}:1]", f"z{li}")
        w.fwd.append(f"np.matmul({W}, {X}, out={Z})")
        if L.b is not None:
            bias = w.view(f"S[{slice_source(L.b)}]", f"b{li}") if isinstance(L.b, slice) else \
                f"{w.view('S')}[{w.const(L.b)}]"
            w.fwd.append(f"np.add({Z}, {bias}, out={Z})")
        if L.c is not None:
            w.fwd.append(f"np.add({Z}, {w.const(L.c, 'c')}, out={Z})")
        w.fwd.append(f"C[{gid}] = ({X}, {W})")

    # -- backward --------------------------------------------------------------------------
    def _grad(self, w: Writer, gid: int) -> None:
        """g{gid}: the group's gradient, its slots summed in order (into slot 0)."""
        g0 = w.view(f"Gb[{gid}][0]")
        fan = self.plan.fan[gid]
        if fan > 2:  # one reduction over the slots, not fan - 1 additions
            acc = w.buffer(f"np.empty(Gb[{gid}].shape[1:])")
            w.bwd.append(f"g{gid} = np.add.reduce({w.view(f'Gb[{gid}]')}, 0, out={acc})")
            return
        w.bwd.append(f"g{gid} = {g0}")
        if fan == 2:
            w.bwd.append(f"np.add({g0}, {w.view(f'Gb[{gid}][1]')}, out={g0})")

    def _copies(self, w: Writer, g, fixed: tuple, gv: str) -> set:
        """A one-node group whose inputs all get exactly its gradient (a sum's terms): the
        destinations that are evenly spaced rows of one buffer take it in one broadcasting
        copy. Returns the (argument, edge) pairs written."""
        plan, done = self.plan, set()
        if len(g.nodes) != 1:
            return done
        by: dict = {}
        for j, edges in enumerate(g.edges):
            for e, (pg, sel, dest) in enumerate(edges):
                if fixed[j] == 1.0 and sel is None and pg not in (plan.INPUTS, plan.PARAMS):
                    by.setdefault(pg, []).append((dest.start, j, e))
        for pg, items in by.items():
            items.sort()
            i = 0
            while i < len(items):
                k = i + 1
                if k < len(items):
                    step = items[k][0] - items[i][0]
                    while k < len(items) and items[k][0] - items[k - 1][0] == step:
                        k += 1
                if k - i >= 2:
                    start, stop = items[i][0], items[k - 1][0] + step
                    T = w.view(f"Gf[{pg}][{start}:{stop}:{step}]")
                    w.bwd.append(f"{T}[...] = {gv}")
                    done.update((j, e) for _, j, e in items[i:k])
                    i = k
                else:
                    i += 1
        return done

    def _put(self, w: Writer, pg: int, sel, dest, loc: str, kind: str, g: str) -> list:
        """The line(s) writing loc * g (rows sel) into gradient buffer pg at dest."""
        plan = self.plan
        gs = g if sel is None else f"{g}[{w.index(sel)}]"
        if pg == plan.PARAMS:
            s = "None" if sel is None else w.const(sel)
            return [f"{w.view('P1')}[{w.index(dest)}] = reduce_over_batch({loc}, {gs}, {s})"]
        if sel is None and isinstance(dest, slice):
            T = w.view(f"Gf[{pg}][{slice_source(dest)}]")
            if kind == "one":
                return [f"{T}[...] = {g}"]
            if kind == "minus":
                return [f"np.negative({g}, out={T})"]
            return [f"np.multiply({loc}, {g}, out={T})"]
        F = w.view(f"Gf[{pg}]")
        if kind == "one":
            e = gs
        elif kind == "minus":
            e = f"-{gs}"
        elif kind == "float" or sel is None:
            e = f"{loc} * {gs}"
        else:
            e = f"np.broadcast_to({loc}, {g}.shape)[{w.const(sel)}] * {gs}"
        return [f"{F}[{w.index(dest)}] = {e}"]

    def _edges(self, w: Writer, edges: list, loc: str, kind: str, g: str) -> None:
        for pg, sel, dest in edges:
            lines = self._put(w, pg, sel, dest, loc, kind, g)
            if pg == self.plan.INPUTS:
                w.bwd.append("if inputs:")
                lines = ["    " + s for s in lines]
            w.bwd.extend(lines)

    def _backward(self, w: Writer, gid: int, g) -> None:
        op = g.op
        if not any(g.edges):
            return
        gv = f"g{gid}"
        out = w.view(f"{'V' if g.batched else 'S'}[{g.start}:{g.stop}:1]")
        args = [w.view(f"{'V' if b else 'S'}[{slice_source(idx)}]") if isinstance(idx, slice) else
                w.view(f"T[{gid}][{j}]") for j, (b, idx) in enumerate(g.gathers)]
        df = op.vdf or op.df
        fixed: Optional[tuple] = None
        stacked = self._stacked(w, g) if op is engine.MAX else None
        if stacked is not None:  # max: 1 along the first largest input, as argmax picks it
            src = "V" if g.batched else "S"
            at = w.buffer(f"np.empty({src}[{g.start}:{g.stop}:1].shape, dtype=np.intp)",
                          f"argmax{gid}")
            w.bwd.append(f"{stacked}.argmax(0, out={at})")
            into = self._stacked_dest(w, g)
            if into is not None:  # every input's gradient in one buffer: one product
                k = len(g.gathers)
                hot = w.buffer(f"np.empty(({k},) + {src}[{g.start}:{g.stop}:1].shape, "
                               "dtype=bool)", f"onehot{gid}")
                ks = w.const(np.arange(k).reshape(k, 1, 1), "k")
                w.bwd.append(f"np.equal({ks}, {at}, out={hot})")
                w.bwd.append(f"np.multiply({hot}, {gv}, out={into})")
                return
            for j, edges in enumerate(g.edges):
                self._edges(w, edges, f"(({at} == {j}) * 1.0)", "array", gv)
            return
        if op is engine.RELU and g.batched:  # the mask out > 0 as the local derivative
            M = w.buffer(f"np.empty(V[{g.start}:{g.stop}:1].shape, dtype=bool)", f"mask{gid}")
            w.bwd.append(f"np.greater({out}, 0.0, out={M})")
            for edges in g.edges:
                self._edges(w, edges, M, "array", gv)
            return
        if op is engine.RELU:
            w.bwd.append(f"{gv} = np.where({out} > 0.0, {gv}, 0.0)")
            fixed = (1.0,)
        else:
            fixed = _constant_locals(op, g.arity)
            if fixed is None:
                w.bwd.append(f"l{gid} = {w.const(df, 'df')}({', '.join(args + [out])})")
        done = set() if fixed is None else self._copies(w, g, fixed, gv)
        for j, edges in enumerate(g.edges):
            edges = [ed for e, ed in enumerate(edges) if (j, e) not in done]
            if not edges:
                continue
            if fixed is None:
                loc, kind = f"l{gid}[{j}]", "array"
            else:
                c = fixed[j]
                loc = repr(c)
                kind = "one" if c == 1.0 else "minus" if c == -1.0 else "float"
            self._edges(w, edges, loc, kind, gv)

    def _dense_backward(self, w: Writer, gid: int, L) -> None:
        plan = self.plan
        gZ = f"g{L.rgid}"
        w.bwd.append(f"X, W = C[{gid}]")
        full = slice(0, L.n, 1)
        rest = []
        for pg, dest, at in L.x_dest:
            pre = "if inputs: " if pg == plan.INPUTS else ""
            if isinstance(dest, slice) and isinstance(at, slice) and at == full:
                T = w.view(f"Gf[{pg}][{slice_source(dest)}]")
                w.bwd.append(f"{pre}np.matmul(W.T, {gZ}, out={T})")
            else:
                rest.append((pre, pg, dest, at))
        if rest:
            w.bwd.append(f"gX = W.T @ {gZ}")
            for pre, pg, dest, at in rest:
                w.bwd.append(f"{pre}{w.view(f'Gf[{pg}]')}[{w.index(dest)}] = "
                             f"gX[{w.index(at)}]")
        for part, prod, size, cols in (("w", f"{gZ} @ X.T", L.m * L.n, L.n),
                                       ("b", f"{gZ}.sum(axis=1)", L.m, 1)):
            spec = L.w_dest if part == "w" else L.b_dest
            if spec is None:
                continue
            dest, at = spec
            d, a = positions(dest), positions(at)
            view = None
            if len(a) == size and np.array_equal(np.sort(a), np.arange(size)):
                flat = np.empty(size, dtype=np.intp)
                flat[a] = d
                view, buf = w.matrix("P1", flat, size // cols, cols, f"d{part}{L.index}",
                                     scratch=part == "w")  # a sum writes any strides
            if view is None:
                w.bwd.append(f"{w.view('P1')}[{w.index(dest)}] = "
                             f"({prod}).reshape(-1)[{w.index(at)}]")
            elif part == "w":
                w.bwd.append(f"np.matmul({gZ}, X.T, out={buf or view})")
                if buf is not None:
                    w.bwd.append(f"{view}[...] = {buf}")
            else:
                w.bwd.append(f"np.add.reduce({gZ}, 1, out={view}[:, 0])")
