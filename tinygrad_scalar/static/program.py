"""`Program`, the facade over a traced graph, and `trace`, which makes one from a function.

A Program holds a `Tape` (the instructions and leaf roles), its frozen `Plan` (the vectorised
schedule) and a `NumpyRunner` that replays the plan; `to_torch` lowers the same plan to torch.
"""
from __future__ import annotations

import inspect
import numbers
import operator
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from .. import engine
from ..engine import Value
from . import feed
from .fused_runner import runner_for
from .plan import Plan
from .tape import Instr, Tape, TraceError, refusing_branches
from .verify import verify as _verify

__all__ = ["Program", "Grads", "trace"]

ArrayLike = Any
_DATA = operator.attrgetter("data")


class Grads(NamedTuple):
    """What Program.backward computed. params: d/d p reduced over the batch (sum or mean), in
    program.params order; per_example: (B, n_params) before reduction (only when asked for:
    by default each contribution to a parameter is summed over the batch as it is made, the
    cheaper way); inputs: per input slot, d/d input per example (shape as fed), or None.
    Every array is the caller's own, not a buffer that the next backward reuses."""
    params: np.ndarray
    per_example: Optional[np.ndarray]
    inputs: Optional[tuple]


class Program:
    """A traced graph as a flat program, replayable on one example or a batch.

    Build with `Program.from_graph(outputs, inputs, params)` or `trace(fn, *examples)`.
    Run with `prog(*feeds)` / `prog.forward(*feeds)`, then `prog.backward()`. Calls from
    several threads are safe: each thread has its own buffers and its own last forward (which
    its backward reads); writing `.grad` of shared parameters from several threads at once is
    the caller's to order.
    """

    @classmethod
    def from_graph(cls, outputs, inputs: Sequence = (), params: Optional[Sequence[Value]] = None,
                   *, frozen: Sequence[Value] = (), names: Optional[Sequence[str]] = None,
                   allow_unused: bool = False, exact: bool = True,
                   fuse: bool = True) -> "Program":
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
        fuse (only with exact=False): run each layer of neurons (sums of weight * value) as one
        matrix product (static.fuse); agrees with the engine to rounding, not bit for bit.
        """
        return cls(outputs, inputs, params, frozen, names, allow_unused, exact, fuse=fuse)

    def __init__(self, outputs, inputs=(), params=None, frozen=(), names=None,
                 allow_unused: bool = False, exact: bool = True, *,
                 function: Optional[Callable] = None, fuse: bool = True):
        if not isinstance(exact, bool):
            raise TypeError(f"exact must be True or False, got {exact!r}")
        tape = Tape(outputs, inputs, params, frozen, names, allow_unused)
        self.exact = exact
        #: the traced function (for verify), or None for a graph given by from_graph
        self.function = function
        self.plan = Plan(tape)
        self.tape: list[Instr] = tape.instrs
        self.params: list[Value] = tape.params
        self.frozen: list[Value] = tape.frozen
        self.input_names: list[str] = tape.input_names
        if not isinstance(fuse, bool):
            raise TypeError(f"fuse must be True or False, got {fuse!r}")
        self._runner = runner_for(self.plan, exact, fuse)
        #: the fused plan (static.fuse.Fused) the replay runs, or None (exact, or nothing fused)
        self.fused = getattr(self._runner, "fused", None)
        self._state_leaves = tape.params + tape.frozen  # read at every run, in row order
        #: the number of leaves in each input slot
        self.input_sizes: list[int] = [len(s) for s in tape.slots]

    def read_state(self) -> np.ndarray:
        """The parameter values, then the frozen ones, as their Values hold them now: the
        state every forward reads (forward_with takes one in this order)."""
        return np.fromiter(map(_DATA, self._state_leaves), float, self.plan.n_state)

    def last_state(self) -> np.ndarray:
        """The parameter values, then the frozen ones, that this thread's last forward read."""
        run = self._runner.last_run()
        if run is None:
            raise RuntimeError("no forward run yet in this thread")
        return run.S[:self.plan.n_state, 0].copy()

    # -- running ---------------------------------------------------------------------------
    def _feed(self, feeds: tuple, named: dict) -> tuple[list, int, bool]:
        tape = self.plan.tape
        given = feed.bind(tape.input_names, feeds, named)
        arrays = [feed.real_array(x, f"input {n!r}") for n, x in zip(tape.input_names, given)]
        B, single = feed.batch_of(tape.input_names, self.input_sizes, tape.slot_groups,
                                  [a.shape for a in arrays])
        return arrays, B, single

    def forward(self, *feeds: ArrayLike, **named: ArrayLike):
        """Run the program: one example (numbers, or (k,) for an input slot of k leaves) or a
        batch (arrays with a leading batch axis). Returns the outputs: a float / (B,) array per
        Value output, a (k,) / (B, k) array per output that is a sequence of Values, a tuple
        when there are several. Parameters are read from their Values at every run."""
        arrays, B, single = self._feed(feeds, named)
        return self._runner.forward(arrays, B, single, self.read_state())

    __call__ = forward

    def forward_with(self, state: ArrayLike, *feeds: ArrayLike, **named: ArrayLike):
        """`forward` with the state given, not read from the Values: one array of the params'
        values then the frozen ones (the order of last_state()). For a training loop that
        keeps its parameters in an array between steps (CompiledStep.keep_arrays)."""
        arrays, B, single = self._feed(feeds, named)
        # as the feeds: np.asarray(dtype=float) would make None nan and parse '0.5'
        state = feed.real_array(state, "forward_with: state")  # the shape error says more
        if state.shape != (self.plan.n_state,):
            raise ValueError(f"forward_with: state must have shape ({self.plan.n_state},): "
                             f"the {len(self.params)} params then the {len(self.frozen)} "
                             f"frozen leaves, in the order of last_state(); got shape "
                             f"{state.shape}")
        return self._runner.forward(arrays, B, single, state)

    def backward(self, grad_outputs=None, reduce: str = "sum", *, accumulate: bool = True,
                 inputs: bool = False, per_example: bool = False,
                 write: bool = True) -> Grads:
        """Reverse sweep over this thread's last forward batch.

        grad_outputs: d loss / d output per output, as a number or per example ((B,) or
        (B, k) arrays); None means 1.0 (one output only). With several outputs, an entry None
        leaves that output out of the sweep (as torch.autograd.grad on a subset of outputs:
        a seed of 0.0 instead would still multiply through, and 0 * inf is nan).
        reduce: 'sum' (the gradient of the sum of the per-example outputs) or 'mean' (divided
        by the batch size). The reduced parameter gradients are added into each parameter's
        .grad (accumulate=True, as the engine's leaves accumulate: call zero_grad /
        optimizer.zero_grad first) or assigned (accumulate=False); write=False leaves .grad
        alone. inputs=True also returns d/d input per example; per_example=True also the
        parameters' per-example gradients (otherwise each contribution to a parameter is
        summed over the batch where it is made, since parameters have no batch axis).
        `reduce` scales only the reduced parameter gradients: the per-example arrays are each
        example's own gradient. Returns a Grads tuple.
        """
        run = self._runner.last_run()
        if run is None:
            raise RuntimeError("backward needs a forward run first: call program(feeds) before "
                               "program.backward() (in the same thread)")
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        tape = self.plan.tape
        seeds = feed.seeds(tape.out_items, tape.single_out, len(tape.out_slots), grad_outputs,
                           run.B, run.single)
        params_grad, per_ex, in_grads = self._runner.backward(run, seeds, inputs, per_example)
        if reduce == "mean":
            params_grad = params_grad / run.B
        if len(tape.param_row) < len(self.params):  # params the outputs never use get zero
            used = np.zeros(len(self.params), bool)
            used[list(tape.param_row.values())] = True
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
        # per_ex may be the runner's own buffer (the next backward overwrites it): a copy, as
        # params_grad and in_grads are, so that results the caller keeps stay as they were
        return Grads(params_grad, None if per_ex is None else per_ex.T.copy(), in_grads)

    def verify(self, *feeds: ArrayLike, samples: int = 3, rtol: Optional[float] = None,
               **named: ArrayLike) -> dict:
        """Re-run the traced function on a few examples of this batch with the engine and
        compare: the graph's structure and constants (a difference means Python control flow
        read the data and was frozen at trace time), then the outputs and parameter
        gradients (to `rtol`). Raises TraceError on a difference; parameters' .grad are left
        as they were, but this thread's last run is now one of these examples (run forward
        again before backward). Only programs made by `trace` can be verified (they keep the
        function). rtol defaults to 1e-12, and to 1e-9 for a fused program: a matrix product
        sums in its own order, and where a sum nearly cancels, an entry computed from it can
        differ by more than 1e-12 relative (one in about a hundred examples of a 64-64-32-10
        net); a graph that changed with the data differs by far more than either."""
        if rtol is None:
            rtol = 1e-12 if self.fused is None else 1e-9
        if self.function is None:
            raise TraceError("verify re-runs the traced function: only programs made by "
                             "trace(fn, ...) keep one (Program.from_graph has no function)")
        arrays, B, single = self._feed(feeds, named)
        return _verify(self, arrays, B, single, samples, rtol)

    # -- looking at it ---------------------------------------------------------------------
    def listing(self, max_lines: Optional[int] = None) -> str:
        """The tape as text, one instruction per line (inputs, state, constants, operations)."""
        return self.plan.tape.listing(max_lines)

    def schedule(self) -> list[tuple[str, int, bool]]:
        """The vectorised groups in run order: (op name, nodes, has a batch axis)."""
        return self.plan.schedule()

    def summary(self) -> str:
        """What the compiler did, as text: the groups in run order, the layers fused into
        matrix products (exact=False) and about how many NumPy calls a step issues."""
        from .fuse import summary
        return f"{self!r}\n" + summary(self.plan, self.fused, self.exact)

    def source(self) -> Optional[str]:
        """The Python the fast replay runs (exact=False with fused layers): the forward and
        backward sweeps written out as NumPy calls, a line or two per group, with the layers
        as matrix products (static.codegen). None when the replay is interpreted (exact=True,
        or nothing to fuse)."""
        code = getattr(getattr(self._runner, "dense", None), "code", None)
        return None if code is None else code.source

    def __repr__(self) -> str:
        ops = sum(1 for i in self.tape if i.kind == "op")
        return (f"Program({len(self.input_names)} input slot(s) {self.input_names}, "
                f"{len(self.params)} params, {ops} operations in {len(self.plan.groups)} "
                f"groups, {len(self.plan.tape.out_slots)} output(s), exact={self.exact})")

    def to_torch(self, dtype=None, device=None):
        """This program as a torch.nn.Module of tensors (see static.torch_backend)."""
        from .torch_backend import TorchProgram
        return TorchProgram(self, dtype=dtype, device=device)


def _placeholder(x, name: str):
    """A fed example value as a placeholder leaf (a number) or a list of them (a sequence)."""
    if isinstance(x, Value):
        raise TypeError(f"trace: example for {name!r} must be numbers, not a Value (trace makes "
                        "the placeholder leaves itself)")
    a = feed.real_array(x, f"trace: example for {name!r}") \
        if not isinstance(x, numbers.Real) else None
    if a is None:
        return Value(float(x), name)
    if a.ndim == 0:
        return Value(float(a), name)
    if a.ndim == 1 and a.size:
        return [Value(float(v), f"{name}[{i}]") for i, v in enumerate(a)]
    raise TraceError(f"trace: example for {name!r} must be a number or a non-empty 1-D "
                     f"sequence of numbers (one example, no batch axis), got shape {a.shape}")


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


def trace(fn: Callable, *examples: Any, params: Optional[Sequence[Value]] = None,
          frozen: Sequence[Value] = (), names: Optional[Sequence[str]] = None,
          allow_unused: bool = False, exact: bool = True, fuse: bool = True) -> Program:
    """Call fn once on placeholder leaves made from `examples` and compile what it built.

    Each example is a number (fn gets one Value) or a 1-D sequence (fn gets a list of Values,
    fed later as one array with the examples on the leading axis). fn returns a Value, a number
    or a (nested) sequence of them. params/frozen/allow_unused/exact/fuse: as Program.from_graph;
    names defaults to fn's argument names. A comparison or bool() of a Value that depends on a
    placeholder raises TraceError (the branch would be frozen, as jax.jit refuses it too);
    control flow that reads `.data` explicitly is frozen at this call, which `Program.verify`
    detects on real examples.
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
    with refusing_branches(ph):
        out = fn(*ph)
    if out is None:
        raise TraceError(f"trace: {getattr(fn, '__name__', 'fn')} returned None; it must return "
                         "the Value(s) to compute")
    return Program(out, ph, params, frozen, names, allow_unused, exact, function=fn, fuse=fuse)
