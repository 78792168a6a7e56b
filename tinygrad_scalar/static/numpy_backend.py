"""The NumPy replay of a plan: buffers, the forward and backward sweeps, error attribution.

`NumpyRunner(plan, exact)` runs a `Plan` on NumPy arrays with each operation's own rules from
the op table: its vector forms (`Op.vf`, `Op.vdf` or `df` itself) on whole groups, its domain
predicate (`Op.bad`) to find a failing element, and the per-element fallback (static.elementwise)
for operations without a vector form. exact=True runs the rules inside `engine.exact_math()`,
so the transcendental helpers go through Python's math per element (the engine's bits); an
operation whose vector forms cannot round as its scalar rules do (`exact_vector=False`: pow)
then runs per element. The only per-operation table here is `IN_PLACE`: the NumPy ufuncs
that write a value straight into its rows (the same arithmetic as the rules' `+ - * /`).

Everything a run writes (the value stores, the gradient buffers, each group's saved arguments,
the batch of the last forward) lives in a per-thread `_Run`, so threads can share one compiled
program: each thread has its own buffers and its own last forward, which its backward reads.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from .. import engine
from .elementwise import per_element, raise_first
from .plan import Group, Plan

__all__ = ["NumpyRunner", "IN_PLACE", "reduce_over_batch"]

IN_PLACE = {engine.ADD: np.add, engine.SUB: np.subtract, engine.MUL: np.multiply,
             engine.DIV: np.divide}


class _Run:
    """One thread's buffers for one batch size, and what its last forward left for backward."""
    __slots__ = ("V", "S", "gbuf", "pbuf", "take", "B", "single", "cache", "views", "flat")

    def __init__(self, plan: Plan, B: int):
        self.S = np.zeros((plan.n_static, 1))
        self.S[plan.n_state:plan.n_state + len(plan.const_values), 0] = plan.const_values
        self.V = np.zeros((plan.n_batched, B))  # rows no group writes (placeholders) stay 0
        self.gbuf = [np.zeros((plan.fan[gid], plan.sizes[gid], B))
                     for gid in range(len(plan.sizes))]
        self.pbuf = np.zeros((plan.fan[plan.PARAMS], plan.sizes[plan.PARAMS], 1))
        #: the gradient buffers as (fan * size, B) views (the edges' flat destinations)
        self.flat = [b.reshape(-1, B) for b in self.gbuf]
        self.take = [[None if isinstance(idx, slice) else np.empty((len(idx), B if b else 1))
                      for b, idx in g.gathers] for g in plan.groups]
        self.B, self.single = B, True
        self.cache: list = [None] * len(plan.groups)
        #: what a generated runner (static.codegen) precomputes for these buffers, or None
        self.views = None


def reduce_over_batch(loc, g: np.ndarray, sel) -> np.ndarray:
    """Σ over the batch of loc * g, row by row (a parameter's contribution, summed where it is
    made). One example: exactly loc * g, the engine's product."""
    if type(loc) is float:  # the rules' constant locals (1.0 and -1.0: exactly g and -g)
        if loc == 1.0:
            return g.sum(axis=1)
        if loc == -1.0:
            return -g.sum(axis=1)
        return (loc * g).sum(axis=1)
    if sel is not None:
        loc = loc[sel]
    if loc.shape[-1] == 1:  # a value without batch axis: loc * Σ_b g
        return loc[:, 0] * g.sum(axis=1)
    return np.einsum("ij,ij->i", loc, g)


class NumpyRunner:
    """Runs a plan with NumPy; exact=True reproduces the engine's floating point per element."""

    def __init__(self, plan: Plan, exact: bool):
        self.plan, self.exact = plan, exact
        #: per group: run with the op's vector forms (else per element)
        self.vector = [g.op.vf is not None and (g.op.exact_vector or not exact)
                       for g in plan.groups]
        #: per group, resolved once: (domain predicate, in-place ufunc, value form, derivative)
        self._rules = [(g.op.bad, IN_PLACE.get(g.op), g.op.vf, g.op.vdf or g.op.df)
                       for g in plan.groups]
        self._threads = threading.local()

    # -- per-thread state ------------------------------------------------------------------
    def _run_for(self, B: int) -> _Run:
        """This thread's buffers for batch size B (the last few sizes are kept: a fit's final
        partial minibatch alternates with the full ones)."""
        t = self._threads
        runs = getattr(t, "runs", None)
        if runs is None:
            runs = t.runs = {}
        run = runs.get(B)
        if run is None:
            if len(runs) >= 3:
                runs.pop(next(iter(runs)))
            run = runs[B] = _Run(self.plan, B)
        return run

    def last_run(self) -> Optional[_Run]:
        """This thread's last forward run, or None."""
        return getattr(self._threads, "last", None)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, arrays: list, B: int, single: bool, state: np.ndarray):
        plan, tape = self.plan, self.plan.tape
        self._threads.last = None  # a failing forward leaves nothing to run backward on
        run = self._run_for(B)
        V, S = run.V, run.S
        k = 0
        for s, a in enumerate(arrays):
            n = len(tape.slots[s])
            if tape.slot_groups[s]:
                V[k:k + n] = a.reshape(-1, n).T
            else:
                V[k] = a
            k += n
        if plan.n_state:
            S[:plan.n_state, 0] = state
        with np.errstate(all="ignore"), engine.exact_math(self.exact):
            self._forward_groups(run)
            # any inf or nan (or a sum that overflows: then looked at closer)
            if not np.isfinite(np.add.reduce(V, None) + np.add.reduce(S, None)):
                self._check_finite(run)
        run.single = single
        self._threads.last = run
        return self._outputs(run)

    def _forward_groups(self, run: _Run) -> None:
        """Every group in run order (a generated runner replaces this loop)."""
        for gid, g in enumerate(self.plan.groups):
            self._run_group(run, gid, g)

    def _args(self, run: _Run, gid: int, g: Group) -> list:
        # a slice is a view; rows by index: np.take into a buffer kept for this batch size
        # (mode='clip' is not buffered; the indices are always in range)
        V, S = run.V, run.S
        return [(V if b else S)[idx] if buf is None else
                np.take(V if b else S, idx, axis=0, out=buf, mode="clip")
                for (b, idx), buf in zip(g.gathers, run.take[gid])]

    def _where(self, g: Group):
        instrs = self.plan.tape.instrs

        def where(shape, e: int) -> str:
            r, b = np.unravel_index(e, shape)
            node = instrs[g.nodes[r]]
            at = f"tape node %{node.index}" + (f" ({node.label})" if node.label else "")
            return at + (f", batch index {b}" if g.batched else
                         " (no batch axis: parameters only)")
        return where

    def _run_group(self, run: _Run, gid: int, g: Group) -> None:
        args = self._args(run, gid, g)
        dest = (run.V if g.batched else run.S)[g.start:g.stop]
        op = g.op
        if self.vector[gid]:
            bad_of, ufunc, vf, _ = self._rules[gid]
            if bad_of is not None:
                bad = bad_of(*args)
                if bad.any():
                    raise_first(op, args, np.flatnonzero(np.broadcast_to(bad, dest.shape)),
                                self._where(g))
            try:
                if ufunc is not None:
                    ufunc(*args, out=dest)
                    run.cache[gid] = (args, None)
                    return
                out = vf(*args)
            except (ArithmeticError, ValueError):  # math's errors per element (exact mode)
                raise_first(op, args, None, self._where(g))
                raise RuntimeError(f"replay of '{op.name}' failed on values the engine "
                                   "accepts: please report this as a bug") from None
            if out is not None:  # None: no vector form for these inputs
                dest[...] = out
                run.cache[gid] = (args, None)
                return
        out, locs = per_element(op, args, self._where(g))
        dest[...] = out
        run.cache[gid] = (args, locs)

    def _check_finite(self, run: _Run) -> None:
        """Some value is inf/nan: find a node whose inputs are finite (an overflow, as the
        engine reports it); non-finite values fed in simply propagate, as in the engine."""
        for gid, g in enumerate(self.plan.groups):
            if run.cache[gid][1] is not None:
                continue  # ran per element: checked there
            args = self._args(run, gid, g)
            out = (run.V if g.batched else run.S)[g.start:g.stop]
            bad = ~np.isfinite(out)
            if not bad.any():
                continue
            for a in args:
                bad = bad & np.isfinite(a)
            if bad.any():
                raise_first(g.op, args, np.flatnonzero(bad).tolist(), self._where(g))

    def _outputs(self, run: _Run):
        plan, tape, B, single = self.plan, self.plan.tape, run.B, run.single
        rows = [run.V[plan.row[o]] if plan.batched[o] else np.full(B, run.S[plan.row[o], 0])
                for o in tape.out_slots]
        res = []
        for start, count, is_group in tape.out_items:
            if is_group:
                arr = np.stack(rows[start:start + count], axis=1)
                res.append(arr[0].copy() if single else arr)
            else:
                res.append(float(rows[start][0]) if single else rows[start].copy())
        return res[0] if tape.single_out else tuple(res)

    # -- backward --------------------------------------------------------------------------
    def backward(self, run: _Run, seeds: list, inputs: bool, per_example: bool):
        """The reverse sweep over `run`: (summed parameter gradients, per-example parameter
        gradients or None, per-input-slot gradients or None)."""
        plan = self.plan
        bufs, PARAMS = run.gbuf, plan.PARAMS
        flats = list(run.flat)
        pbuf = run.pbuf
        if not per_example:  # parameters: one column, contributions reduced over the batch
            flats[PARAMS] = pbuf.reshape(-1, 1)
        # the outputs' seeds; an unseeded output's slot holds 0 (it adds nothing)
        for dest, seed in zip(plan.seed_dest, seeds):
            if dest is not None:
                if seed is not None and dest[0] == PARAMS and not per_example:
                    seed = seed.sum()  # an output that is a parameter itself
                flats[dest[0]][dest[1]] = 0.0 if seed is None else seed
        dead = plan.dead_rows(tuple(s is not None for s in seeds))
        with np.errstate(all="ignore"), engine.exact_math(self.exact):
            self._backward_groups(run, flats, inputs, per_example, dead)
        if per_example:
            per_ex = bufs[PARAMS][0]
            params_grad = per_ex.sum(axis=1)
        else:
            per_ex, params_grad = None, pbuf[0, :, 0].copy()
        return params_grad, per_ex, (self._input_grads(run) if inputs else None)

    def _backward_groups(self, run: _Run, flats: list, inputs: bool, per_example: bool,
                         dead: Optional[list]) -> None:
        """The groups in reverse run order, then each leaf's contributions summed in order
        (a generated runner replaces this for the common case)."""
        plan, bufs = self.plan, run.gbuf
        INPUTS, PARAMS = plan.INPUTS, plan.PARAMS
        for gid in range(len(plan.groups) - 1, -1, -1):
            g = plan.groups[gid]
            if dead is not None and dead[gid] is True:  # nothing here reaches a seed
                for edges in g.edges:
                    for pg, sel, dest in edges:
                        if pg != INPUTS or inputs:
                            flats[pg][dest] = 0.0
                continue
            self._backward_group(run, gid, g, bufs[gid], flats, inputs, per_example)
            if dead is not None and dead[gid] is not None:  # rows off the seeded paths
                for pg, zero in dead[gid]:
                    if pg != INPUTS or inputs:
                        flats[pg][zero] = 0.0
        for gid in (INPUTS, PARAMS):
            if gid == INPUTS and not inputs:
                continue
            buf = bufs[gid] if gid != PARAMS or per_example else run.pbuf
            for t in range(1, plan.fan[gid]):
                buf[0] += buf[t]

    def _backward_group(self, run, gid, g, buf, flats, inputs, per_example) -> None:
        """One group of the reverse sweep: sum its gradient slots in order, then contribute to
        its parents (fused_runner replaces this for its matrix-product layers)."""
        grad = buf[0]
        for t in range(1, self.plan.fan[gid]):
            grad += buf[t]
        self._contribute(run, gid, g, grad, flats, inputs, per_example)

    def _locals(self, run: _Run, gid: int, g: Group) -> tuple:
        args, locs = run.cache[gid]
        if locs is not None:
            return locs
        df = g.op.vdf or g.op.df
        return df(*args, (run.V if g.batched else run.S)[g.start:g.stop])

    def _contribute(self, run, gid, g, grad, flats, inputs, per_example) -> None:
        """Write loc * grad for every edge of the group into its parents' gradient slots."""
        INPUTS, PARAMS = self.plan.INPUTS, self.plan.PARAMS
        locs = self._locals(run, gid, g)
        flat = (g.op is engine.RELU or g.op is engine.MAX) and not np.isfinite(grad).all()
        g_all = grad
        for j, edges in enumerate(g.edges):
            if not edges:
                continue
            loc = locs[j]
            if flat:  # relu's flat part, max's edges not picked: nothing (not 0 * inf = nan)
                grad = np.where(np.broadcast_to(loc, g_all.shape) == 0.0, 0.0, g_all)
            for pg, sel, dest in edges:
                if pg == INPUTS and not inputs:
                    continue
                target = flats[pg]
                one = type(loc) is float and loc == 1.0
                minus = type(loc) is float and loc == -1.0
                if pg == PARAMS and not per_example:
                    target[dest, 0] = reduce_over_batch(loc, grad if sel is None else grad[sel],
                                                        sel)
                elif sel is None:
                    if one:
                        target[dest] = grad
                    elif minus:
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
                    if one:
                        target[dest] = gs
                    elif minus:
                        target[dest] = -gs
                    elif type(loc) is float:
                        target[dest] = loc * gs
                    else:
                        target[dest] = np.broadcast_to(loc, grad.shape)[sel] * gs

    def _input_grads(self, run: _Run) -> tuple:
        tape = self.plan.tape
        G = run.gbuf[self.plan.INPUTS][0]
        used = set(tape.input_row.values())
        out, k = [], 0
        for s, leaves in enumerate(tape.slots):
            n = len(leaves)
            block = G[k:k + n]
            unused = [j for j in range(n) if (k + j) not in used]
            if unused:
                block = block.copy()
                block[unused] = 0.0
            if tape.slot_groups[s]:
                arr = block.T.copy()
                out.append(arr[0] if run.single else arr)
            else:
                out.append(float(block[0, 0]) if run.single else block[0].copy())
            k += n
        return tuple(out)
