"""Running a fused plan: each layer one matrix product forward, two backward.

`FusedRunner` has the NumpyRunner interface (forward, last_run, backward) and runs a
`fuse.Fused` plan: a layer's dense group computes Z = W X (+ b) straight into the rows of its
neurons; backward, the rows' gradient gZ (m, B) gives the inputs' W^T gZ and the weights'
gZ X^T (or, per example, gZ[:, None] * X[None]) and the biases' Σ_b gZ, written into the
plan's gradient slots, so every other group runs exactly as in the plain replay.

Errors and overflows stay the engine's: when a fused forward fails or meets a value that is not
finite, the same batch runs again through the plain (unfused) replay, which names the failing
node as the engine does, or, when inf/nan was fed in, propagates it as the engine would.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from .codegen import DomainError, Generated, NoVectorForm
from .fuse import Fused, fuse
from .numpy_backend import NumpyRunner
from .plan import Plan, as_index

__all__ = ["FusedRunner", "runner_for"]


class _Unfusable(Exception):
    """The fused forward met a value that is not finite: the plain replay takes over."""


class _NotFinite(Exception):
    """The generated backward gave a gradient that is not finite: the interpreting sweep,
    which follows the engine's conventions for inf and nan exactly, runs it again."""


def _flat(dest) -> int:
    return dest.start if isinstance(dest, slice) else int(dest[0])


class _LayerRun:
    """One layer's precomputed gathers and gradient destinations in the fused plan."""

    def __init__(self, fused: Fused, li: int):
        plan = fused.plan
        self.index = li
        L = fused.layers[li]
        m, n = L.shape
        self.gid, self.rgid = fused.dense_gid[li], fused.row_gid[li]
        dg, rg = plan.groups[self.gid], plan.groups[self.rgid]
        ins = plan.tape.instrs[dg.nodes[0]]
        # the row group's order of neurons; the weights' rows follow it, so Z lands in place
        pos = {node: j for j, node in enumerate(fused.row_nodes[li])}
        perm = [pos[node] for node in rg.nodes]
        self.m, self.n = m, n
        self.x = as_index([plan.row[a] for a in ins.args[:n]])
        wargs = [ins.args[n + j * n:n + (j + 1) * n] for j in perm]
        self.w = np.array([plan.row[a] for ws in wargs for a in ws], dtype=np.intp)
        self.b = None
        if L.biases is not None:
            self.b = as_index([plan.row[ins.args[n + m * n + j]] for j in perm])
        c = np.array([L.consts[j] for j in perm])
        self.c = c[:, None] if c.any() else None
        edges = dg.edges
        # inputs: per gradient buffer, (flat destinations, positions in X)
        by: dict = {}
        for i in range(n):
            for pg, _, dest in edges[i]:
                d, p = by.setdefault(pg, ([], []))
                d.append(_flat(dest))
                p.append(i)
        self.x_dest = [(pg, as_index(d), as_index(p)) for pg, (d, p) in by.items()]
        wd, ws = [], []
        for r, j in enumerate(perm):
            for i in range(n):
                for pg, _, dest in edges[n + j * n + i]:
                    wd.append(_flat(dest))
                    ws.append(r * n + i)
        self.w_dest = (as_index(wd), as_index(ws)) if wd else None
        bd, bs = [], []
        if L.biases is not None:
            for r, j in enumerate(perm):
                for pg, _, dest in edges[n + m * n + j]:
                    bd.append(_flat(dest))
                    bs.append(r)
        self.b_dest = (as_index(bd), as_index(bs)) if bd else None


class _DenseRunner(NumpyRunner):
    """The plain runner on the fused plan, with the dense and row groups run as products."""

    def __init__(self, fused: Fused, generate: bool = True):
        super().__init__(fused.plan, exact=False)
        self.fused = fused
        self.layers = [_LayerRun(fused, li) for li in range(len(fused.layers))]
        self._dense = {L.gid: L for L in self.layers}
        self._rows = {L.rgid: L for L in self.layers}
        #: the generated sweeps (static.codegen), or None: this plan is interpreted
        self.code: Optional[Generated] = None
        if generate:
            try:
                self.code = Generated(self)
            except NoVectorForm:
                pass

    def _forward_groups(self, run) -> None:
        code = self.code
        if code is None:
            return super()._forward_groups(run)
        if run.views is None:
            run.views = code.views(run)
        try:
            code.forward(run.views, run.cache)
        except NoVectorForm:  # an input with no vector form: interpret (per element) for good
            self.code = None
            super()._forward_groups(run)
        except DomainError:
            raise _Unfusable from None

    def _backward_groups(self, run, flats, inputs, per_example, dead) -> None:
        code = self.code
        if code is None or per_example or dead is not None or run.views is None or \
                getattr(self._threads, "interpret", False):
            return super()._backward_groups(run, flats, inputs, per_example, dead)
        code.backward(run.views, run.cache, inputs)
        if not (np.isfinite(np.add.reduce(run.pbuf[0], None)) and (
                not inputs or np.isfinite(np.add.reduce(run.gbuf[self.plan.INPUTS][0], None)))):
            raise _NotFinite  # maybe 0 * inf where relu passes 0: interpret (backward)

    def backward(self, run, seeds: list, inputs: bool, per_example: bool):
        try:
            return super().backward(run, seeds, inputs, per_example)
        except _NotFinite:
            self._threads.interpret = True
            try:
                return super().backward(run, seeds, inputs, per_example)
            finally:
                self._threads.interpret = False

    def _run_group(self, run, gid, g) -> None:
        L = self._dense.get(gid)
        if L is None:
            if gid not in self._rows:  # a row group's values are written by its layer
                super()._run_group(run, gid, g)
            return
        V, S = run.V, run.S
        X = V[L.x] if isinstance(L.x, slice) else V.take(L.x, axis=0)
        W = S[:, 0].take(L.w).reshape(L.m, L.n)
        rows = self.plan.groups[L.rgid]
        Z = V[rows.start:rows.stop]
        np.matmul(W, X, out=Z)
        if L.b is not None:
            Z += S[L.b]
        if L.c is not None:
            Z += L.c
        V[g.start:g.stop] = 0.0  # the dense node's own row: a placeholder
        run.cache[gid] = (X, W)

    def _check_finite(self, run) -> None:
        raise _Unfusable

    def _backward_group(self, run, gid, g, buf, flats, inputs, per_example) -> None:
        if gid in self._rows:
            grad = buf[0]
            for t in range(1, self.plan.fan[gid]):
                grad += buf[t]
            run.cache[gid] = grad  # gZ, for the layer's dense group (next in the sweep)
            return
        L = self._dense.get(gid)
        if L is None:
            return super()._backward_group(run, gid, g, buf, flats, inputs, per_example)
        X, W = run.cache[gid]
        gZ = run.cache[L.rgid]
        INPUTS, PARAMS = self.plan.INPUTS, self.plan.PARAMS
        gX = None
        for pg, dest, at in L.x_dest:
            if pg == INPUTS and not inputs:
                continue
            if gX is None:
                gX = W.T @ gZ
            flats[pg][dest] = gX[at]
        if L.w_dest is not None:
            dest, at = L.w_dest
            if per_example:
                flats[PARAMS][dest] = (gZ[:, None, :] * X[None, :, :]).reshape(-1, run.B)[at]
            else:
                flats[PARAMS][dest, 0] = (gZ @ X.T).reshape(-1)[at]
        if L.b_dest is not None:
            dest, at = L.b_dest
            if per_example:
                flats[PARAMS][dest] = gZ[at]
            else:
                flats[PARAMS][dest, 0] = gZ.sum(axis=1)[at]


class FusedRunner:
    """Runs the fused plan; a batch the fused forward cannot take (an error, or a value that
    is not finite) runs through the plain replay instead, which reports it as the engine does.
    `fallbacks` counts those batches (per runner, all threads)."""

    def __init__(self, plan: Plan, fused: Fused, generate: bool = True):
        self.plan, self.fused = plan, fused
        self.dense = _DenseRunner(fused, generate)
        self.plain = NumpyRunner(plan, exact=False)
        self.fallbacks = 0
        self._threads = threading.local()

    def forward(self, arrays: list, B: int, single: bool, state: np.ndarray):
        t = self._threads
        t.runner = None
        try:
            out = self.dense.forward(arrays, B, single, state)
        except Exception:  # the plain replay raises the engine's error, or runs (inf fed in)
            self.fallbacks += 1
            out = self.plain.forward(arrays, B, single, state)
            t.runner = self.plain
            return out
        t.runner = self.dense
        return out

    def last_run(self):
        r = getattr(self._threads, "runner", None)
        return None if r is None else r.last_run()

    def backward(self, run, seeds: list, inputs: bool, per_example: bool):
        return self._threads.runner.backward(run, seeds, inputs, per_example)


def runner_for(plan: Plan, exact: bool, fuse_layers: bool = True, min_terms: int = 2):
    """The runner for a plan: fused (a FusedRunner) when not exact, asked for and the plan has
    layers to fuse; else the plain NumpyRunner."""
    if not exact and fuse_layers:
        fused: Optional[Fused] = fuse(plan.tape, min_terms)
        if fused is not None:
            return FusedRunner(plan, fused)
    return NumpyRunner(plan, exact)
