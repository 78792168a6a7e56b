"""A compiled Program as a PyTorch module: the same plan, run on tensors by torch's autograd.

`Program.to_torch(dtype=None, device=None)` returns a `TorchProgram`: an `nn.Module` whose single
parameter vector holds the program's parameters (in `program.params` order) and whose forward
takes the same feeds as the program (tensors or arrays with a leading batch axis, of any batch
size) and returns tensors on the module's device (the CPU unless `device=` or `.to(...)` says
otherwise). It runs the plan's vectorised schedule (one torch call per group of same-depth
operations) and leaves gradients to torch's autograd, so a model prototyped on the scalar engine
can move to a tensor engine (GPU, torch.optim, torch.compile) when it outgrows this one.

Each operation runs its own vector form from the op table (`Op.vf`, written with the engine's
dispatching helpers, which send tensors to torch), and torch's autograd differentiates it.
Torch has no domain checks: where the engine raises (log of a negative number, an overflow)
the exported function returns torch's nan or inf. Operations without a vector form (custom
operations) run their scalar rules per element (static.elementwise) inside an autograd.Function.
Building the module is linear in the size of the plan.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import feed
from .elementwise import per_element
from .plan import positions

try:
    import torch
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("Program.to_torch() needs PyTorch: pip install torch") from e

__all__ = ["TorchProgram", "to_torch"]


def _where_in_tensor(shape, e: int) -> str:
    r, b = np.unravel_index(e, shape)
    return f"row {r}, batch index {b} of the torch module"


class _PerElement(torch.autograd.Function):
    """An operation without a vector form: its scalar rules from the op table, per element."""

    @staticmethod
    def forward(ctx, op, *args):
        arrays = [a.detach().cpu().numpy().astype(float) for a in args]
        out, locs = per_element(op, arrays, _where_in_tensor)
        ref = args[0]
        ctx.save_for_backward(*[torch.as_tensor(loc, dtype=ref.dtype, device=ref.device)
                                for loc in locs])
        return torch.as_tensor(out, dtype=ref.dtype, device=ref.device)

    @staticmethod
    def backward(ctx, g):
        return (None,) + tuple(g * loc for loc in ctx.saved_tensors)


def _lowering(op):
    """The op on tensors: its vector form from the op table (the engine's dispatching helpers
    send exp, where, ... to torch), else its scalar rules per element."""
    def run(args):
        if op.vf is not None:
            out = op.vf(*args)
            if out is not None:
                return out
        shape = torch.broadcast_shapes(*(a.shape for a in args))
        return _PerElement.apply(op, *[a.expand(shape) for a in args])
    return run


class _Blocks:
    """A row space (S or V) cut into blocks: the tensors the module holds or computes. Maps
    rows to (block, offset) for all rows at once, so building the module stays linear."""

    def __init__(self, bounds: list, n_rows: int):
        self.block = np.zeros(n_rows, dtype=np.intp)
        self.start = np.array([lo for lo, _ in bounds], dtype=np.intp)
        self.size = np.array([hi - lo for lo, hi in bounds], dtype=np.intp)
        for bid, (lo, hi) in enumerate(bounds):
            self.block[lo:hi] = bid

    def pieces(self, idx) -> tuple:
        """([(block, offsets)], permutation or None) that gather these rows in order."""
        rows = positions(idx)  # a descending slice to row 0 has stop None
        blocks = self.block[rows]
        bid, n = int(blocks[0]), len(rows)
        off = rows - self.start[bid]
        k = int(off[1] - off[0]) if n > 1 else 0
        size = int(self.size[bid])
        # the j-th of equal chunks of a whole block (the plan lays rows out so that a group's
        # arguments often are): taken by unbind, whose backward stacks the chunks' gradients
        # once (index_select's backward zero-fills the whole block for each chunk)
        if (n < size and k == 1 and size % n == 0 and off[0] % n == 0
                and np.array_equal(off, off[0] + np.arange(n))):
            return ("chunk", bid, n, int(off[0]) // n)
        if (blocks == blocks[0]).all():
            return [(int(blocks[0]), rows - self.start[blocks[0]])], None
        order = np.argsort(blocks, kind="stable")
        ids, first = np.unique(blocks[order], return_index=True)
        bounds = list(first) + [len(rows)]
        pieces = [(int(b), rows[order[bounds[i]:bounds[i + 1]]] - self.start[b])
                  for i, b in enumerate(ids)]
        perm = None if np.array_equal(order, np.arange(len(rows))) else np.argsort(order)
        return pieces, perm


class TorchProgram(torch.nn.Module):
    """The program on tensors. `params`: an nn.Parameter vector in program.params order
    (initialised from the Values' current data); `forward(*feeds)`: as Program.forward, with
    tensors out. `load_into_values()` copies the trained vector back into the Values."""

    def __init__(self, program, dtype=None, device=None):
        super().__init__()
        dtype = torch.float64 if dtype is None else dtype
        device = torch.device("cpu" if device is None else device)
        plan = program.plan
        self.program, self.dtype = program, dtype
        self._names, self._sizes = plan.tape.input_names, program.input_sizes
        self._slot_groups = plan.tape.slot_groups
        self._out_items, self._single_out = plan.tape.out_items, plan.tape.single_out
        self.params = torch.nn.Parameter(torch.tensor([p.data for p in program.params],
                                                      dtype=dtype, device=device).reshape(-1))
        self.register_buffer("frozen", torch.tensor([v.data for v in program.frozen],
                                                    dtype=dtype, device=device).reshape(-1))
        self.register_buffer("consts", torch.tensor(plan.const_values, dtype=dtype,
                                                    device=device).reshape(-1, 1))
        # blocks of the two row spaces: static (state, consts, static groups) and batched
        # (input leaves, batched groups)
        n_state, n_const = plan.n_state, len(plan.const_values)
        sb = [(0, n_state), (n_state, n_state + n_const)]
        bb = [(0, plan.tape.n_input_leaves)]
        for g in plan.groups:
            (bb if g.batched else sb).append((g.start, g.stop))
        S, V = _Blocks(sb, plan.n_static), _Blocks(bb, plan.n_batched)
        self._steps = [(_lowering(g.op), g.batched,
                        [(b, (V if b else S).pieces(idx)) for b, idx in g.gathers])
                       for g in plan.groups]
        self._outs = [(plan.batched[o], (V if plan.batched[o] else S).pieces(
            np.array([plan.row[o]]))) for o in plan.tape.out_slots]
        self._index_cache: dict = {}

    def _indices(self, device) -> tuple:
        """The gathers' row indices as long tensors on `device` (made once per device)."""
        got = self._index_cache.get(device)
        if got is None:
            def conv(spec):
                if spec[0] == "chunk":
                    return spec
                pieces, perm = spec
                return ([(b, torch.as_tensor(r, dtype=torch.long, device=device))
                         for b, r in pieces],
                        None if perm is None else torch.as_tensor(perm, dtype=torch.long,
                                                                  device=device))
            got = ([[(b, conv(spec)) for b, spec in gathers] for _, _, gathers in self._steps],
                   [(b, conv(spec)) for b, spec in self._outs])
            self._index_cache[device] = got
        return got

    @staticmethod
    def _gather(store, spec, chunks: dict):
        if spec[0] == "chunk":
            _, bid, n, j = spec
            key = (id(store), bid, n)
            parts = chunks.get(key)
            if parts is None:
                block = store[bid]
                parts = chunks[key] = block.reshape(-1, n, block.shape[-1]).unbind(0)
            return parts[j]
        pieces, perm = spec
        parts = [store[bid].index_select(0, rows) for bid, rows in pieces]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        return x if perm is None else x.index_select(0, perm)

    def _tensor(self, x, name: str, device):
        if torch.is_tensor(x):
            if x.is_complex() or x.dtype == torch.bool:
                raise TypeError(f"input {name!r} must be a real tensor, got {x.dtype}")
            return x.to(device=device, dtype=self.dtype)
        return torch.as_tensor(feed.real_array(x, f"input {name!r}"), dtype=self.dtype,
                               device=device)

    def forward(self, *feeds: Any, **named: Any):
        device = self.params.device
        given = feed.bind(self._names, feeds, named)
        tensors = [self._tensor(x, n, device) for n, x in zip(self._names, given)]
        B, single = feed.batch_of(self._names, self._sizes, self._slot_groups,
                                  [tuple(t.shape) for t in tensors])
        rows = [t.reshape(-1, k).T if grp else t.reshape(1, -1)
                for t, k, grp in zip(tensors, self._sizes, self._slot_groups)]
        inputs = torch.cat(rows, 0) if rows else torch.zeros((0, B), dtype=self.dtype,
                                                             device=device)
        state = torch.cat([self.params, self.frozen]).reshape(-1, 1)
        sstore, bstore = [state, self.consts], [inputs]
        step_idx, out_idx = self._indices(device)
        chunks: dict = {}  # this call's blocks cut by unbind
        for (fn, batched, _), gathers in zip(self._steps, step_idx):
            args = [self._gather(bstore if b else sstore, spec, chunks) for b, spec in gathers]
            (bstore if batched else sstore).append(fn(args))
        outs = []
        for b, spec in out_idx:
            v = self._gather(bstore if b else sstore, spec, chunks)[0]
            outs.append(v if b else v.expand(B))
        res = []
        for start, count, is_group in self._out_items:
            if is_group:
                t = torch.stack(outs[start:start + count], dim=1)
                res.append(t[0] if single else t)
            else:
                res.append(outs[start][0] if single else outs[start])
        return res[0] if self._single_out else tuple(res)

    @torch.no_grad()
    def load_into_values(self) -> None:
        """Copy the parameter vector back into the program's parameter Values."""
        for p, v in zip(self.program.params, self.params.detach().cpu().tolist()):
            if not math.isfinite(v):
                raise ValueError(f"parameter {p.label or p!r} would become {v!r}")
            p.data = v


def to_torch(program, dtype=None, device=None) -> TorchProgram:
    """`program` as a torch module (the same as program.to_torch(dtype, device))."""
    return TorchProgram(program, dtype=dtype, device=device)
