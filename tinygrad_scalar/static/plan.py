"""The plan: a tape scheduled into vectorised groups, with every row and gradient destination.

A `Plan` is data, built once from a `Tape` and never changed by a run: which nodes carry a batch
axis, the groups (nodes of one depth, operation and input kinds, run as one vectorised call),
where every node's value lives (a row of the static store S, shape (n_static, 1), or of the
batched store V, shape (n_batched, B)), where each group reads its arguments (gathers) and where
each local derivative times gradient is written in the backward sweep (edges). Backends
(numpy_backend, torch_backend) only read a plan, so a later pass can rewrite one (fuse groups,
reorder rows) without touching them.

Row spaces. S: params, then frozen, then constants, then the groups without batch axis.
V: the fed input leaves in feeding order, then the batched groups. Gradient buffers: one per
group, plus INPUTS (the fed leaves) and PARAMS; buffer `gid` has shape (fan[gid], sizes[gid], B):
slot t holds each node's t-th contribution in the engine's backward order, summed in that order.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..engine import Op
from .tape import Tape

__all__ = ["Group", "Plan", "as_index", "positions"]


def positions(idx) -> np.ndarray:
    """The rows an index (as as_index makes it: a slice, also descending to the start with stop
    None, or an index array) selects, as an array."""
    if not isinstance(idx, slice):
        return np.asarray(idx, dtype=np.intp)
    step = idx.step or 1
    return np.arange(idx.start + 1 if step < 0 else idx.stop, dtype=np.intp)[idx]


def as_index(rows: Sequence[int]):
    """A slice when the rows are evenly spaced (a view, no copy), else an index array."""
    n = len(rows)
    if n == 1:
        return slice(rows[0], rows[0] + 1)
    step = rows[1] - rows[0]
    if step != 0 and all(rows[i + 1] - rows[i] == step for i in range(n - 1)):
        stop = rows[-1] + step
        return slice(rows[0], stop if stop >= 0 else None, step)
    return np.asarray(rows, dtype=np.intp)


class Group:
    """Tape nodes of one depth, operation and input kinds: one vectorised call.

    op, arity, batched (the result has a batch axis), nodes (tape indices, in row order),
    start/stop (its rows in S or V), gathers (per argument: (from V?, rows)), edges (per
    argument: [(gradient buffer, rows of this group or None for all, flat destinations)])."""
    __slots__ = ("op", "arity", "batched", "nodes", "start", "stop", "gathers", "edges")

    def __init__(self, op: Op, arity: int, batched: bool, nodes: list):
        self.op, self.arity, self.batched, self.nodes = op, arity, batched, nodes
        self.start = self.stop = 0
        self.gathers: list = []
        self.edges: list = []


class Plan:
    """The frozen schedule of a tape (see the module docstring for the row spaces)."""

    def __init__(self, tape: Tape):
        self.tape = tape
        instrs = tape.instrs
        n = len(instrs)
        batched, level = [False] * n, [0] * n
        for ins in instrs:
            if ins.kind == "input":
                batched[ins.index] = True
            elif ins.kind == "op":
                batched[ins.index] = any(batched[a] for a in ins.args)
                level[ins.index] = 1 + max(level[a] for a in ins.args)
        self.batched = batched
        self.n_state = len(tape.params) + len(tape.frozen)
        self.groups, rank = self._groups(level)
        self._rows(rank)
        self._gradients()
        self._dead_cache: dict = {}

    def _groups(self, level: list) -> tuple[list, dict]:
        instrs, batched, n = self.tape.instrs, self.batched, len(self.tape.instrs)
        keyed: dict = {}
        for ins in instrs:
            if ins.kind != "op":
                continue
            key = (level[ins.index], id(ins.op), len(ins.args),
                   tuple(batched[a] for a in ins.args), batched[ins.index])
            if key not in keyed:
                keyed[key] = (ins.op, [])
            keyed[key][1].append(ins.index)
        order = sorted(keyed, key=lambda k: (k[0], k[4], keyed[k][0].name, k[2], k[3], k[1]))
        groups = [Group(keyed[k][0], k[2], k[4], keyed[k][1]) for k in order]
        # row order within groups: first use by a later group (scan consumers from the last
        # level down, position by position), so that gathers become evenly spaced slices
        rank: dict = {}
        for o in self.tape.out_slots:
            if o not in rank:
                rank[o] = len(rank)
        for g in reversed(groups):
            g.nodes.sort(key=lambda i: rank.get(i, i + n))
            for j in range(g.arity):
                for i in g.nodes:
                    a = instrs[i].args[j]
                    if a not in rank:
                        rank[a] = len(rank)
        return groups, rank

    def _rows(self, rank: dict) -> None:
        tape, instrs, n = self.tape, self.tape.instrs, len(self.tape.instrs)
        row = [0] * n
        for i, k in tape.param_row.items():
            row[i] = k
        for i, k in tape.frozen_row.items():
            row[i] = k
        consts = sorted((ins.index for ins in instrs if ins.kind == "const"),
                        key=lambda i: rank.get(i, i + n))
        for k, i in enumerate(consts):
            row[i] = self.n_state + k
        for i, k in tape.input_row.items():
            row[i] = k
        ns, nb = self.n_state + len(consts), tape.n_input_leaves
        for g in self.groups:
            if g.batched:
                g.start, nb = nb, nb + len(g.nodes)
            else:
                g.start, ns = ns, ns + len(g.nodes)
            g.stop = g.start + len(g.nodes)
            for k, i in enumerate(g.nodes):
                row[i] = g.start + k
        self.row, self.n_static, self.n_batched = row, ns, nb
        #: the constants' values, in their rows n_state, n_state + 1, ... of S
        self.const_values = [instrs[i].value for i in consts]
        for g in self.groups:
            for j in range(g.arity):
                parents = [instrs[i].args[j] for i in g.nodes]
                g.gathers.append((self.batched[parents[0]], as_index([row[p] for p in parents])))

    def _gradients(self) -> None:
        """Where each contribution d out/d parent * g goes: slot t of the parent's gradient
        buffer, t being the parent's t-th contribution in the engine's backward order."""
        tape, instrs = self.tape, self.tape.instrs
        owner: dict = {}  # tape slot -> (gradient buffer, position in it)
        for gid, g in enumerate(self.groups):
            for k, i in enumerate(g.nodes):
                owner[i] = (gid, k)
        self.INPUTS, self.PARAMS = INPUTS, PARAMS = len(self.groups), len(self.groups) + 1
        for i, k in tape.input_row.items():
            owner[i] = (INPUTS, k)
        for i, k in tape.param_row.items():
            owner[i] = (PARAMS, k)
        sizes = [len(g.nodes) for g in self.groups] + [tape.n_input_leaves, len(tape.params)]
        # the engine's order: reversed topological order, parents in argument order; the
        # outputs first get their seeds (one per appearance among the outputs)
        count = [0] * len(instrs)
        seed_slot = []
        for o in tape.out_slots:
            seed_slot.append(count[o])
            count[o] += 1
        edge_rank: dict = {}
        for ins in reversed(instrs):
            for j, a in enumerate(ins.args):
                if a in owner:
                    edge_rank[(ins.index, j)] = count[a]
                    count[a] += 1
        fan = [1] * (len(self.groups) + 2)
        for i, (gid, _) in owner.items():
            fan[gid] = max(fan[gid], count[i])
        self.fan, self.sizes = fan, sizes
        #: per output: (gradient buffer, flat index in it), or None (a constant/frozen output)
        self.seed_dest = [None if o not in owner else
                          (owner[o][0], t * sizes[owner[o][0]] + owner[o][1])
                          for o, t in zip(tape.out_slots, seed_slot)]
        for g in self.groups:
            for j in range(g.arity):
                by_dest: dict = {}
                for r, i in enumerate(g.nodes):
                    a = instrs[i].args[j]
                    if a not in owner:
                        continue  # constants and frozen leaves get no gradient
                    pg, pk = owner[a]
                    rows_, flat = by_dest.setdefault(pg, ([], []))
                    rows_.append(r)
                    flat.append(edge_rank[(i, j)] * sizes[pg] + pk)
                g.edges.append([(pg, None if len(rows_) == len(g.nodes) else as_index(rows_),
                                 as_index(flat)) for pg, (rows_, flat) in by_dest.items()])
        # a node with fewer contributions than its buffer's fan leaves slots that nothing
        # writes: zeros from allocation, so adding them changes nothing

    def dead_rows(self, seeded: tuple) -> Optional[list]:
        """For a pattern of seeded outputs: None when every node reaches a seeded output;
        else per group True (no row does), None (all do) or [(gradient buffer, flat indices
        of the contributions of rows that do not)], which backward sets to zero."""
        if all(seeded):
            return None
        if seeded in self._dead_cache:
            return self._dead_cache[seeded]
        instrs = self.tape.instrs
        live = [False] * len(instrs)
        for o, s in zip(self.tape.out_slots, seeded):
            if s:
                live[o] = True
        for ins in reversed(instrs):
            if live[ins.index]:
                for a in ins.args:
                    live[a] = True
        out = []
        for g in self.groups:
            rows = np.array([live[i] for i in g.nodes])
            if rows.all():
                out.append(None)
            elif not rows.any():
                out.append(True)
            else:
                zero = []
                for edges in g.edges:
                    for pg, sel, dest in edges:
                        r = np.arange(len(g.nodes))
                        r = r if sel is None else r[sel]
                        d = positions(dest)
                        mask = ~rows[r]
                        if mask.any():
                            zero.append((pg, d[mask]))
                out.append(zero)
        if all(d is None for d in out):  # the unseeded outputs are on seeded paths anyway
            out = None
        self._dead_cache[seeded] = out
        return out

    def schedule(self) -> list[tuple[str, int, bool]]:
        """The vectorised groups in run order: (op name, nodes, has a batch axis)."""
        return [(g.op.name, len(g.nodes), g.batched) for g in self.groups]
