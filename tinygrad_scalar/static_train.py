"""Training through a compiled (static) graph: trace one example's loss, replay whole batches.

`CompiledStep` is a drop-in step function for `train.fit` (`fit(..., compiled=True)` builds
one): it traces the per-example loss of the model once, as a function of the example's inputs
and target (placeholders) and of the parameters (state), then every step feeds a minibatch as
arrays, takes the mean over the batch plus alpha * L2 of the parameters, writes each
parameter's gradient into `.grad` and calls the optimizer, exactly like the engine's
`TrainStep` but with one NumPy call per group of same-depth operations instead of one Python
object per node and example.

The per-example losses here are written *branch-free*, because a static graph cannot follow
Python `if`s on data: the engine's losses shift by the largest logit's `.data` (a constant
chosen per example) and branch on a logit's sign; the static versions compute the shift inside
the graph (relu for the hinge; for the softmax shift one n-ary `Value.max` node), which is just
as stable and has the same gradient (the shift's own gradient cancels exactly in log-sum-exp).
"""
from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import engine
from .engine import ADD, MUL, SUM, Value
from .optim import Optimizer
from .static import Program, TraceError
from .static.tape import refusing_branches

__all__ = ["CompiledStep", "STATIC_LOSSES", "static_hinge", "static_mse", "static_bce",
           "static_cross_entropy"]


def _vsum(terms: list) -> Value:
    return terms[0] if len(terms) == 1 else Value.sum(terms)


def _one(outputs: list, name: str) -> Value:
    if len(outputs) != 1:
        raise TraceError(f"{name} needs a model with one output, this one has {len(outputs)}")
    return outputs[0]


def static_hinge(outputs: list, targets: list) -> Value:
    """relu(1 - y * score), label y = -1 or +1 (the engine's hinge term, y a placeholder)."""
    return (1.0 - targets[0] * _one(outputs, "hinge")).relu()


def static_mse(outputs: list, targets: list) -> Value:
    """(score - y)², as the engine's mse term."""
    d = _one(outputs, "mse") - targets[0]
    return d * d


def _softplus(z: Value) -> Value:
    """log(1 + exp(z)) = m + log(exp(-m) + exp(z - m)) with m = relu(z) >= 0: no exp argument
    is positive, so it never overflows, and d/dz is sigmoid(z) everywhere (also at 0)."""
    m = z.relu()
    return m + ((-m).exp() + (z - m).exp()).log()


def static_bce(outputs: list, targets: list) -> Value:
    """softplus(z) - t * z: binary cross-entropy from a logit, target t in [0, 1]."""
    z = _one(outputs, "binary_cross_entropy")
    return _softplus(z) - targets[0] * z


def static_cross_entropy(outputs: list, targets: list) -> Value:
    """log Σ exp(z_j) - Σ t_j z_j with one-hot targets t (or any that sum to 1: the form below
    equals it only then), as log Σ exp(z_j - m) - Σ t_j (z_j - m) (losses.cross_entropy's):
    the shift m = max(z) is one n-ary max node in the graph (Value.max, which compares nothing
    in Python), so every exp argument is <= 0 for every example, and m is never added back to
    a small log (at logits of 1e16, m + log 2 - z_t was 0); the shift's own gradient cancels."""
    if len(targets) != len(outputs):
        raise TraceError(f"cross_entropy: {len(outputs)} logits but {len(targets)} one-hot "
                         "target entries")
    m = outputs[0] if len(outputs) == 1 else Value.max(outputs)
    shifted = [z - m for z in outputs]
    return (_vsum([d.exp() for d in shifted]).log()
            - _vsum([t * d for t, d in zip(targets, shifted)]))


# name -> (per-example loss, number of target placeholders (None: one per output), accuracy)
STATIC_LOSSES: dict = {
    "hinge": static_hinge,
    "mse": static_mse,
    "binary_cross_entropy": static_bce,
    "bce": static_bce,
    "cross_entropy": static_cross_entropy,
}


def _targets_hinge(y: np.ndarray, k: int) -> np.ndarray:
    if (np.abs(y) != 1.0).any():  # nan too
        bad = np.flatnonzero((y != 1.0) & (y != -1.0))
        i = int(bad[0])
        raise ValueError(f"hinge: labels must be -1 or +1, got {float(y[i])!r} at position {i} "
                         "(for 0/1 labels use 2*y - 1)")
    return y


def _targets_bce(y: np.ndarray, k: int) -> np.ndarray:
    bad = np.flatnonzero(~((y >= 0.0) & (y <= 1.0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"binary_cross_entropy: targets must be in [0, 1], got {y[i]!r} at "
                         f"position {i} (for -1/+1 labels use (y + 1) / 2)")
    return y


def _targets_onehot(y: np.ndarray, k: int) -> np.ndarray:
    yi = y.astype(np.int64)
    bad = np.flatnonzero((yi != y) | (yi < 0) | (yi >= k))
    if bad.size:
        i = int(bad[0])
        hint = (" (the model has one output: cross_entropy needs one output per class)"
                if k == 1 else "")
        raise ValueError(f"cross_entropy: target {float(y[i])!r} at position {i} is not a class "
                         f"index in 0..{k - 1} ({k} logits){hint}")
    onehot = np.zeros((len(y), k))
    onehot[np.arange(len(y)), yi] = 1.0
    return onehot


def _acc_sign(scores: np.ndarray, y: np.ndarray) -> float:
    return int(np.count_nonzero((scores[:, 0] > 0) == (y > 0))) / len(y)


def _acc_logit(scores: np.ndarray, y: np.ndarray) -> float:
    return int(np.count_nonzero((scores[:, 0] > 0) == (y >= 0.5))) / len(y)


def _acc_argmax(scores: np.ndarray, y: np.ndarray) -> float:
    return int(np.count_nonzero(np.argmax(scores, axis=1) == y)) / len(y)


_TARGETS = {static_hinge: (_targets_hinge, _acc_sign), static_mse: (None, None),
            static_bce: (_targets_bce, _acc_logit),
            static_cross_entropy: (_targets_onehot, _acc_argmax)}


def _owner(cls: type, name: str) -> type:
    return next(c for c in cls.__mro__ if name in c.__dict__)


def _has_array_step(opt) -> bool:
    """Does opt's step() come with its array form? Only when both were written together, in
    one class body that is not Optimizer's: a subclass that overrides step() but not
    step_array must run its own step, and so must an optimizer whose step is replaced on the
    instance (opt.step = clipped_step) or patched into its class: the array form would skip
    what the new step adds. Asked at every call, so a change made after the CompiledStep was
    built counts too. When in doubt the answer is no: stepping the Values is always right."""
    own = getattr(opt, "__dict__", {})
    if "step" in own or "step_array" in own:  # set on the instance: both, or the Values
        return "step" in own and "step_array" in own
    cls = type(opt)
    # the class's answer, kept per pair of functions it resolves to: a patch (of the class or
    # of a base) resolves to another function, so it is asked afresh
    key = (cls, getattr(cls, "step", None), getattr(cls, "step_array", None))
    known = _CLASS_ARRAY_STEP.get(key)
    if known is None:
        known = _CLASS_ARRAY_STEP[key] = _class_has_array_step(cls)
    return known


_CLASS_ARRAY_STEP: dict = {}


def _class_has_array_step(cls: type) -> bool:
    owner = _owner(cls, "step_array")
    if owner is Optimizer or owner is not _owner(cls, "step"):
        return False
    # and both written in that class body: a step patched in later (SGD.step = clipped) has
    # another name, or, wrapped with functools.wraps (which copies the name), __wrapped__
    body, d = owner.__qualname__, owner.__dict__
    return (getattr(d["step"], "__qualname__", None) == body + ".step"
            and not hasattr(d["step"], "__wrapped__")
            and getattr(d["step_array"], "__qualname__", None) == body + ".step_array")


def _overflow(op, xs: Sequence[float], what: str) -> OverflowError:
    """The engine's error for an operation of the batch loss that overflows (TrainStep
    raises it from the same operation), naming which part of the loss it was."""
    return OverflowError(f"{engine.overflow_error(op, tuple(xs))} ({what}); the step changed "
                         "nothing")


def _check_finite(op, xs: Sequence[float], out: float, what: str) -> None:
    """A non-finite result from finite operands is an overflow (as the engine's _finish):
    refused before any update. Non-finite operands propagate, as in the engine."""
    if not math.isfinite(out) and all(map(math.isfinite, xs)):
        raise _overflow(op, xs, what)


def _check_squares(P: np.ndarray, sq: np.ndarray) -> None:
    """The L2 term's p * p, each: the first that overflows from a finite p, named."""
    bad = np.flatnonzero(~np.isfinite(sq) & np.isfinite(P))
    if bad.size:
        i = int(bad[0])
        raise _overflow(MUL, (float(P[i]), float(P[i])), f"params[{i}] squared, in the L2 term")


class CompiledStep:
    """One optimisation step through a traced per-example loss, replayed over the batch.

    Same contract as `train.TrainStep`: forward every sample, loss = mean over the batch +
    alpha * Σ p², zero_grad, gradients into every parameter's .grad, optimizer.step(); returns
    (loss, accuracy) of the batch before the update. With exact=True the loss is TrainStep's
    bit for bit and every per-example gradient too, but a parameter's contributions (from the
    examples of the batch and from the L2 term) are added in another order than the engine's,
    so the gradients agree to about 1e-16 relative, not bit for bit (Adam, which divides by
    the gradient's size, can make that visible for a gradient that is nearly 0); to rounding
    with exact=False.

    model: a callable from a list of `nin` Values to a Value or a list of Values (e.g. an MLP);
    nin defaults to model.nin. loss: 'hinge' (labels ±1), 'mse', 'bce' (targets in [0, 1]),
    'cross_entropy' (class indices), or a callable per_example(outputs, targets) -> Value with
    `n_targets` target placeholders. accuracy(outputs, targets): as TrainStep's, it gets the
    model's outputs as Values (one per example, or a list per example for several outputs)
    and the targets as given, before the update (one that raises changes nothing); the
    default for a named loss reads the arrays directly. verify: on the first call, re-trace
    the loss on two examples of the batch and compare with the engine (Program.verify).
    exact, fuse: see Program.from_graph (exact=False, fuse=True runs each layer as one
    matrix product).
    The parameters are the optimizer's; other model parameters are frozen (read, not trained).
    A batch loss that overflows (the sum of the losses, a p * p of the L2 term, ...) raises
    the engine's OverflowError, naming the operation, before anything is updated.
    """

    def __init__(self, model: Callable, loss: Union[str, Callable], optimizer, alpha: float = 0.0,
                 *, nin: Optional[int] = None, n_targets: int = 1,
                 accuracy: Optional[Callable] = None, verify: bool = True, exact: bool = True,
                 fuse: bool = True):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a tinygrad_scalar.optim optimizer (SGD, Adam), "
                            f"got {type(optimizer).__name__}: {optimizer!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha >= 0 \
                or alpha == float("inf"):
            raise ValueError(f"alpha (the L2 weight) must be a finite number >= 0, got {alpha!r}")
        if isinstance(loss, str):
            if loss not in STATIC_LOSSES:
                raise ValueError(f"loss must be one of {sorted(STATIC_LOSSES)} or a callable "
                                 f"per_example(outputs, targets) -> Value, got {loss!r}")
            per_example = STATIC_LOSSES[loss]
        elif callable(loss):
            per_example = loss
        else:
            raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")
        if nin is None:
            nin = getattr(model, "nin", None)
            if nin is None:
                raise TypeError("CompiledStep needs nin= (the number of model inputs): the model "
                                "has no .nin")
        self.model, self.optimizer, self.alpha = model, optimizer, float(alpha)
        self.params = optimizer.params
        self._per_example = per_example
        self._prepare_targets, acc = _TARGETS.get(per_example, (None, None))
        self._accuracy = accuracy if accuracy is not None else acc
        self._user_accuracy = accuracy is not None
        self._verify = verify
        self._keeping = 0  # depth of keep_arrays blocks
        self._held: Optional[np.ndarray] = None  # in a block: params then frozen, as an array
        self._held_grad: Optional[np.ndarray] = None
        self._read: Optional[np.ndarray] = None  # what the block read from the Values
        self.program = self._trace(int(nin), n_targets, exact, fuse)

    def _trace(self, nin: int, n_targets: int, exact: bool, fuse: bool = True) -> Program:
        if not engine.is_grad_enabled():
            raise TraceError("CompiledStep traces the model: create it outside no_grad()")
        x = [Value(0.0, f"x[{i}]") for i in range(nin)]
        with refusing_branches([x]):
            out = self.model(x)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        self.nout = len(outs)
        # a user's accuracy gets what the engine's TrainStep gives it: per example, what the
        # model returns (a Value, or a list / tuple of them)
        self._out_kind = (tuple if isinstance(out, tuple) else list
                          if isinstance(out, list) else None)
        k = self.nout if self._per_example is static_cross_entropy else n_targets
        group = k > 1 or self._per_example is static_cross_entropy
        t = [Value(0.0, f"y[{i}]") for i in range(k)] if group else Value(0.0, "y")

        def per_example(x_, t_):
            o = self.model(x_)
            o = list(o) if isinstance(o, (list, tuple)) else [o]
            return [self._per_example(o, t_ if isinstance(t_, list) else [t_]), o]

        self._fn = per_example
        opt_set = set(self.params)
        others = [p for p in getattr(self.model, "parameters", lambda: [])() if p not in opt_set]
        with refusing_branches([x, t]):
            traced = per_example(x, t)
        return Program(traced, [x, t], self.params, others, ["x", "y"],
                       exact=exact, function=per_example, fuse=fuse)

    def _targets(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        if self._prepare_targets is not None:
            return self._prepare_targets(y.reshape(-1), self.nout)
        return y

    @contextmanager
    def keep_arrays(self):
        """A block of steps in which the parameters stay in an array between steps: each step
        reads them from the last step's array instead of the Values and updates the array
        (the optimizer's step_array: the same numbers as its step()), so a step costs no pass
        over the Values. The Values get their trained numbers and the last step's .grad when
        any block ends (an inner one too), also through an exception, and at every sync();
        until then they hold what they held before the block. A step that raises, for any
        reason (bad targets, a domain error, the accuracy, the optimizer), syncs at once: it
        leaves the Values at the last step that did not, with the .grad TrainStep would leave
        (its own batch's when the optimizer refused the update, as a failed optimizer.step()
        does; the last good step's when it raised before that), and the next step reads the
        Values again. `fit(compiled=True)` steps inside this block and syncs before each
        callback, so no user code sees a stale Value. Optimizers without an array form (a
        subclass with its own step(), a step replaced on the instance or patched into the
        class) step the Values as outside the block.

        To change a parameter's .data inside the block, call sync() first: the next step then
        reads the Values, as after every sync (fit does it before each callback). A change
        made without it would go unseen by the steps and be overwritten when the block ends;
        so that no edit is lost without a word, the next sync (or the block's end) keeps the
        changed number, writes the trained ones into the other parameters and raises
        RuntimeError naming the changed parameter."""
        self._keeping += 1
        try:
            yield self
        finally:
            self._keeping -= 1
            self.sync()  # also an inner block: after it, the Values hold the numbers

    def sync(self) -> None:
        """Write the array of a keep_arrays block into the Values (data and .grad); the next
        step reads the Values again (so changes made to them from now on count). A parameter
        (or frozen leaf) whose .data was changed since the block read it, with no sync in
        between, keeps the change: the others are written, then this raises RuntimeError
        naming it (the steps since did not see the change)."""
        held, self._held = self._held, None
        read, self._read = self._read, None
        if held is None:
            return
        n = len(self.params)
        now = self.program.read_state()  # the params, then the frozen: held's rows
        changed = np.flatnonzero((now != read) & ~(np.isnan(now) & np.isnan(read)))
        keep = set(changed.tolist())
        for i, (p, d, g) in enumerate(zip(self.params, held[:n].tolist(),
                                          self._held_grad.tolist())):
            if i not in keep:
                p.data = d
            p.grad = g
        if changed.size:
            raise self._changed_error(changed, read, now)

    def _changed_error(self, changed: np.ndarray, read: np.ndarray,
                       now: np.ndarray) -> RuntimeError:
        n = len(self.params)
        leaves = self.program.params + self.program.frozen  # the rows of read and now
        i = int(changed[0])
        who = f"params[{i}]" if i < n else f"the frozen parameter {i - n} (not trained)"
        more = f" (and {changed.size - 1} more)" if changed.size > 1 else ""
        others = ", and the other parameters have their trained numbers" if n > 1 else ""
        return RuntimeError(
            f"{who} ({leaves[i]!r}){more} was changed inside a keep_arrays block without "
            f"step.sync() first (from {float(read[i])!r}, the number the block had read, to "
            f"{float(now[i])!r}): the steps since did not see the change. The change is "
            f"kept{others}; to change a parameter inside the block, call step.sync() first "
            f"(the next step then reads the Values), as fit(compiled=True) does before each "
            f"callback")

    def __call__(self, X: Sequence, y: Sequence) -> tuple:
        if self._held is None:
            return self._step(X, y)
        try:
            return self._step(X, y)
        except BaseException as e:
            # whatever raised (targets, the forward, accuracy, the optimizer): the Values get
            # the last good step's numbers now, as the docstring of keep_arrays promises; an
            # edit that sync finds is told as a note on this error, which stays the one raised
            try:
                self.sync()
            except RuntimeError as edit:
                e.add_note(f"also: {edit}")
            raise

    def _step(self, X: Sequence, y: Sequence) -> tuple:
        prog = self.program
        X = np.asarray(X, dtype=float)
        T = self._targets(y)
        if X.ndim != 2 or len(X) != len(T):
            raise ValueError(f"CompiledStep needs X of shape (batch, {prog.input_sizes[0]}) and "
                             f"one target per row, got X {X.shape} and {len(T)} targets")
        opt = self.optimizer
        array_step = _has_array_step(opt)
        if self._verify or not array_step:
            self.sync()  # verify and the optimizer's own step() read the Values
        if self._verify:
            prog.verify(X, T, samples=2)
            self._verify = False
        n = len(self.params)
        state = self._held
        if state is None:
            losses, scores = prog(X, T)
            state = prog.last_state()  # the parameter values this run read, then the frozen
        else:
            losses, scores = prog.forward_with(state, X, T)
        P = state[:n]
        B = len(losses)
        total = self._total(losses, P)
        # the accuracy before the update, as TrainStep: an accuracy that raises applies nothing
        acc = self._batch_accuracy(scores, y)
        seed = 1.0 / B if B > 1 else 1.0
        # the scores (the second output) are left out: they only report, and add nothing
        grads = prog.backward((seed, None), write=False).params
        if self.alpha:  # 2 * (alpha * p): scaling by 2 is exact, so the same bits
            with np.errstate(over="ignore"):  # an inf gradient is refused by the optimizer
                grads += P * (2.0 * self.alpha)
        if array_step:
            # what the Values held, for sync to see an edit made after this; taken before the
            # step (a step_array may update P, a view of state, in place)
            read = state.copy() if self._keeping and self._held is None else None
            try:
                new = opt.step_array(P, grads)  # raises before anything changed, or steps
            except BaseException:  # as a failed optimizer.step(): .grad holds this batch's
                if self._held is None:
                    for p, g in zip(self.params, grads.tolist()):
                        p.grad = g
                else:  # __call__ syncs: the Values get the last good numbers and these .grad
                    self._held_grad = grads
                raise  # its message shows each Value as it is left: P[i] and this batch's .grad
            if self._keeping:
                if read is not None:
                    self._read = read
                self._held = new if len(state) == n else np.concatenate([new, state[n:]])
                self._held_grad = grads
            else:  # one pass writes .grad and .data (zero_grad, the .grad loop and step's)
                for p, g, d in zip(self.params, grads.tolist(), new.tolist()):
                    p.grad = g
                    p.data = d
        else:
            opt.zero_grad()
            for p, g in zip(self.params, grads.tolist()):
                p.grad = g
            opt.step()
        return total, acc

    def _total(self, losses: np.ndarray, P: np.ndarray) -> float:
        """The batch loss: mean of the per-example losses + alpha * Σ p², each operation
        checked for overflow as the engine checks it (TrainStep raises OverflowError from the
        same operation), before anything is updated; no NumPy warning. An overflow anywhere
        leaves the result inf or nan, so a finite one is checked by one test (every step),
        and only a non-finite one is taken apart operation by operation."""
        if self.program.exact:
            return self._total_checked(losses, P)
        B = len(losses)
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(losses.sum())
            if B > 1:
                total = total * (1.0 / B)
            if self.alpha:
                total = total + float(P @ P) * self.alpha
        return total if -math.inf < total < math.inf else self._total_checked(losses, P)

    def _total_checked(self, losses: np.ndarray, P: np.ndarray) -> float:
        """_total, checking each operation as it goes (the exact mode's loss, and any
        non-finite one)."""
        B = len(losses)
        exact = self.program.exact  # exact: the loss value exactly as TrainStep computes it
        with np.errstate(over="ignore", invalid="ignore"):
            ls = losses.tolist() if exact else None
            total = (SUM.f(*ls) if B > 1 else ls[0]) if exact else float(losses.sum())
            if not math.isfinite(total):
                _check_finite(SUM, losses.tolist(), total, "the sum of the per-example losses")
            if B > 1:
                total = total * (1.0 / B)
            if not self.alpha:
                return float(total)
            if exact:
                sq = (P * P).tolist()
                l2 = SUM.f(*sq) if len(sq) > 1 else sq[0]
            else:  # agrees with the engine to rounding
                l2 = float(P @ P)
            if not math.isfinite(l2):  # the first p * p that overflows, else their sum
                sq = P * P
                _check_squares(P, sq)
                _check_finite(SUM, sq.tolist(), l2, "the L2 term's sum of squares")
            return float(self._add_l2(total, l2))

    def _add_l2(self, total: float, l2: float) -> float:
        scaled = l2 * self.alpha
        _check_finite(MUL, (l2, self.alpha), scaled, "the L2 term times alpha")
        out = total + scaled
        _check_finite(ADD, (total, scaled), out, "the batch loss plus the L2 term")
        return out

    def _batch_accuracy(self, scores: np.ndarray, y: Sequence):
        if self._accuracy is None:
            return None
        if not self._user_accuracy:
            return self._accuracy(scores, np.asarray(y, dtype=float).reshape(-1))
        # what TrainStep gives a user's accuracy: per example what the model returns, as Values
        kind = self._out_kind
        if kind is None:
            outputs = [Value(v) for v in scores[:, 0].tolist()]
        else:
            outputs = [kind([Value(v) for v in row]) for row in scores.tolist()]
        with engine.no_grad():  # as TrainStep calls it: float(output) works there too
            return self._accuracy(outputs, y)
