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

The package is a small compiler, one job per module, each depending only on the ones before:

- `tape`: the graph as instructions (one `Instr` per node, holding the engine `Op`), with the
  role of every leaf checked (input, param, frozen, constant).
- `plan`: the frozen schedule: groups of same-depth, same-operation nodes (one vectorised call
  each), the row of every value and where every gradient contribution goes, in the engine's
  backward order, so per example the replay does the engine's floating point operations.
- `feed`: the shape rules for feeds and seeds, shared by the backends.
- `elementwise`: the one per-element fallback (custom operations) and error attribution.
- `numpy_backend` / `torch_backend`: run a plan; `verify`: compare a trace with the engine.
- `program`: the `Program` facade and `trace`.
"""
from __future__ import annotations

from .program import Grads, Program, trace
from .tape import Instr, TraceError

__all__ = ["Program", "Instr", "Grads", "TraceError", "trace", "to_torch"]


def to_torch(program: Program, dtype=None, device=None):
    """`program` as a torch.nn.Module (needs PyTorch): see Program.to_torch."""
    return program.to_torch(dtype=dtype, device=device)
