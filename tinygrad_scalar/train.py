"""Training loops: one step (forward, loss, backward, update) and `fit` over epochs of minibatches.

`fit` does not hard-wire how a step is computed: it calls a *step function*
`step_fn(X_batch, y_batch) -> (loss, accuracy)`. The default, `TrainStep`, runs the engine
(Values, backward, optimizer); any other callable with that signature (for example a compiled
replay of the same graph) can be passed as `fit(..., step_fn=...)` and gets the same batching,
progress bar and history.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

from . import losses as _losses
from .checks import hyperparameter
from .data import seeded_rng as _seeded
from .engine import Value, no_grad
from .optim import Optimizer

__all__ = ["History", "TrainStep", "fit", "evaluate", "moons_step", "accuracy", "LOSSES"]

StepFn = Callable[[Sequence, Sequence], tuple]
LossFn = Callable[[list, Sequence], Value]
AccFn = Callable[[list, Sequence], Optional[float]]


# ---------------------------------------------------------------------------------------------
# Accuracy: how a model's outputs become class decisions, per loss.

def _data(v) -> float:
    return v.data if isinstance(v, Value) else float(v)


def _sign_accuracy(outputs: list, targets: Sequence) -> float:
    """Labels -1/+1 (hinge): correct when score and label have the same sign."""
    return sum((_data(s) > 0) == (t > 0) for s, t in zip(outputs, targets)) / len(outputs)


def _logit_accuracy(outputs: list, targets: Sequence) -> float:
    """Targets 0/1 (binary cross-entropy): predict 1 when the logit is positive."""
    return sum((_data(s) > 0) == (t >= 0.5) for s, t in zip(outputs, targets)) / len(outputs)


def _argmax_accuracy(outputs: list, targets: Sequence) -> float:
    """Class indices (cross-entropy): predict the largest logit."""
    hits = 0
    for row, t in zip(outputs, targets):
        vals = [_data(v) for v in row]
        hits += max(range(len(vals)), key=vals.__getitem__) == t
    return hits / len(outputs)


LOSSES: dict[str, tuple[LossFn, Optional[AccFn]]] = {
    "hinge": (_losses.hinge, _sign_accuracy),
    "binary_cross_entropy": (_losses.binary_cross_entropy, _logit_accuracy),
    "bce": (_losses.binary_cross_entropy, _logit_accuracy),
    "cross_entropy": (_losses.cross_entropy, _argmax_accuracy),
    "mse": (_losses.mse, None),
}


def accuracy(outputs: list, targets: Sequence, loss: str = "hinge") -> Optional[float]:
    """The fraction of correct decisions for outputs trained with `loss` (None for 'mse')."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if len(outputs) != len(targets) or not outputs:
        raise ValueError(f"accuracy needs as many outputs as targets (and at least one), "
                         f"got {len(outputs)} and {len(targets)}")
    fn = LOSSES[loss][1]
    return None if fn is None else fn(outputs, targets)


def _resolve(loss: Union[str, LossFn], acc: Optional[AccFn]) -> tuple[LossFn, Optional[AccFn]]:
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable "
                             f"loss(outputs, targets) -> Value, got {loss!r}")
        fn, default_acc = LOSSES[loss]
        return fn, (acc if acc is not None else default_acc)
    if not callable(loss):
        raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}: {loss!r}")
    return loss, acc


def _check_alpha(alpha) -> float:
    return hyperparameter(alpha, "alpha (the L2 weight)")


def _check_optimizer(model: Callable, optimizer: Optimizer) -> None:
    """The optimizer must update this model's parameters (all of them or some: freezing a
    layer is fine); one built over another model's parameters would train nothing."""
    params = getattr(model, "parameters", None)
    if not callable(params) or not isinstance(optimizer, Optimizer):
        return  # a plain function: nothing to compare with
    mine = {id(p) for p in params()}
    foreign = [i for i, p in enumerate(optimizer.params) if id(p) not in mine]
    if foreign:
        i = foreign[0]
        raise ValueError(f"the optimizer updates {len(foreign)} of its "
                         f"{len(optimizer.params)} parameters that are not the model's "
                         f"(first: params[{i}] = {optimizer.params[i]!r}): it was built over "
                         f"another model's parameters, so training would change nothing the "
                         f"model uses; build it from this model, e.g. "
                         f"SGD(model.parameters(), lr=0.1)")


# ---------------------------------------------------------------------------------------------
# One step.

class TrainStep:
    """One optimisation step on the engine: forward every sample, loss (+ alpha * L2),
    accuracy, zero_grad, backward, optimizer.step(). Returns (loss, accuracy) of the batch as
    it was *before* the update (the numbers the forward pass saw). accuracy(outputs, targets)
    gets the model's outputs as Values (one per example, or a list per example for a model
    with several outputs) and the targets as given; it runs before the update, so one that
    raises changes nothing, and inside no_grad(), as a metric: float(output) works there."""

    def __init__(self, model: Callable, loss: Union[str, LossFn], optimizer: Optimizer,
                 alpha: float = 0.0, accuracy: Optional[AccFn] = None):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a tinygrad_scalar.optim optimizer (SGD, Adam), "
                            f"got {type(optimizer).__name__}: {optimizer!r}")
        _check_optimizer(model, optimizer)
        self.model, self.optimizer = model, optimizer
        self.loss_fn, self.accuracy_fn = _resolve(loss, accuracy)
        self.alpha = _check_alpha(alpha)
        self.params = optimizer.params

    def __call__(self, X: Sequence, y: Sequence) -> tuple[float, Optional[float]]:
        model = self.model
        outputs = [model(x) for x in X]
        total = self.loss_fn(outputs, y)
        if self.alpha:
            total = total + _losses.l2(self.params, self.alpha)
        # before the update: an accuracy function that raises leaves the step unapplied (no
        # parameter, .grad or optimizer state changed), as any other failed step
        acc = None
        if self.accuracy_fn is not None:
            with no_grad():  # it reports: float(output) works, and nothing is recorded
                acc = self.accuracy_fn(outputs, y)
        opt = self.optimizer
        opt.zero_grad()
        total.backward()
        opt.step()
        return total.data, acc


def moons_step(model: Callable, X: Sequence, y: Sequence, lr: float,
               alpha: float = 1e-4) -> tuple[float, float]:
    """micrograd's demo step, spelled out: hinge loss (labels -1/+1) + alpha * L2 over the whole
    batch, backward, then p -= lr * p.grad. Returns (loss, accuracy) before the update.

    lr and alpha are checked as the optimizers check them (finite real numbers >= 0), and the
    new values are computed before any is written: a step that raises changes no parameter."""
    lr = hyperparameter(lr, "lr")
    alpha = _check_alpha(alpha)
    params = model.parameters()
    scores = [model(x) for x in X]
    total = _losses.hinge(scores, y) + _losses.l2(params, alpha)
    for p in params:
        p.grad = 0.0
    total.backward()
    new = [p.data - lr * p.grad for p in params]
    bad = next((i for i, x in enumerate(new) if not math.isfinite(x)), None)
    if bad is not None:
        raise FloatingPointError(f"moons_step would make parameter {bad} ({params[bad]!r}) "
                                 f"{new[bad]!r}; it changed nothing: lower the learning rate")
    for p, x in zip(params, new):
        p.data = x
    return total.data, _sign_accuracy(scores, y)


def evaluate(model: Callable, X: Sequence, y: Sequence, loss: Union[str, LossFn] = "hinge",
             accuracy: Optional[AccFn] = None) -> tuple[float, Optional[float]]:
    """(loss, accuracy) of the model on (X, y), recording no graph (no_grad)."""
    loss_fn, acc_fn = _resolve(loss, accuracy)
    with no_grad():
        outputs = [model(x) for x in X]
        value = loss_fn(outputs, y)
    return value.data, (acc_fn(outputs, y) if acc_fn is not None else None)


# ---------------------------------------------------------------------------------------------
# Many steps.

@dataclass(repr=False)
class History:
    """What fit recorded. `loss`, `accuracy` and `lr` hold one entry per step (the batch's
    numbers before that step's update); `epoch_loss`/`epoch_accuracy` are sample-weighted
    means per epoch."""

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    epoch_loss: list = field(default_factory=list)
    epoch_accuracy: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.loss)

    def steps_to(self, target: float = 1.0) -> Optional[int]:
        """How many updates had been applied when the batch accuracy first reached `target`
        (0: already before training), or None if it never did."""
        for k, a in enumerate(self.accuracy):
            if a is not None and a >= target:
                return k
        return None

    def __repr__(self) -> str:
        """A summary (steps, epochs, first and last loss, last accuracy, time), not every
        float: a History of thousands of steps printed in a notebook stays one line."""
        if not self.loss:
            return "History(0 steps)"
        parts = [f"{self.steps} steps", f"{len(self.epoch_loss)} epochs",
                 f"loss {self.loss[0]:.4g} -> {self.loss[-1]:.4g}"]
        if self.accuracy and self.accuracy[-1] is not None:
            parts.append(f"last accuracy {self.accuracy[-1]:.1%}")
        parts.append(f"{self.seconds:.2f} s")
        return f"History({', '.join(parts)})"

    def as_dict(self) -> dict:
        return {"loss": list(self.loss), "accuracy": list(self.accuracy), "lr": list(self.lr),
                "epoch_loss": list(self.epoch_loss),
                "epoch_accuracy": list(self.epoch_accuracy), "seconds": self.seconds}


def _is_terminal(stream) -> bool:
    """A terminal, or a Jupyter kernel's output stream (which says it is no tty, yet shows a
    bar live); files, pipes and StringIO are not."""
    if type(stream).__module__.startswith("ipykernel."):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress(total: int, desc: str, quiet: bool = False, file=None):
    """A tqdm bar, disabled when quiet or when its stream is neither a terminal nor Jupyter's
    (logs, CI, tests)."""
    import warnings
    with warnings.catch_warnings():  # in Jupyter without ipywidgets tqdm.auto warns on import
        warnings.simplefilter("ignore")  # and falls back to the text bar, which is what we want
        from tqdm.auto import tqdm
    stream = sys.stderr if file is None else file
    return tqdm(total=total, desc=desc, file=stream, leave=True, dynamic_ncols=True,
                disable=quiet or not _is_terminal(stream))


def fit(model: Callable, X: Sequence, y: Sequence, loss: Union[str, LossFn] = "hinge",
        optimizer: Optional[Optimizer] = None, *, epochs: int = 100,
        batch_size: Optional[int] = None, alpha: float = 0.0, shuffle: bool = True,
        seed: Union[int, random.Random, None] = None, accuracy: Optional[AccFn] = None,
        step_fn: Optional[StepFn] = None, callback: Optional[Callable[[History], Any]] = None,
        quiet: bool = False, desc: str = "training", file=None,
        compiled: bool = False, exact: bool = True) -> History:
    """Train for `epochs` passes over (X, y) in minibatches and return the History.

    loss: 'hinge' (labels -1/+1), 'bce' (targets 0/1), 'cross_entropy' (class indices),
    'mse', or a callable loss(outputs, targets) -> Value. alpha adds alpha * L2 of the
    parameters. batch_size=None uses the whole set each step (one step per epoch); otherwise
    each epoch is shuffled (seeded by `seed`) unless shuffle=False. step_fn replaces the
    engine step (see TrainStep); callback(history) is called after every step and stops
    training by returning True. The progress bar is quiet when asked or not on a terminal.
    compiled=True traces one example's loss once and replays every minibatch with NumPy
    (static_train.CompiledStep: same numbers, far faster); it needs a loss given by name.
    exact (with compiled=True): True replays the engine's floating point per example; False
    runs each layer as one matrix product (agrees with the engine to rounding, and is faster
    again). Either way the parameters stay in an array between steps and are written into
    the Values before each callback and when training ends (CompiledStep.keep_arrays).
    """
    if not isinstance(exact, bool):
        raise TypeError(f"exact must be True or False, got {exact!r}")
    if not exact and not compiled:
        raise TypeError("exact=False is a setting of the compiled replay: pass compiled=True "
                        "too (the engine's own step is always exact)")
    n = len(X)
    if n != len(y):
        raise ValueError(f"X has {n} rows but y has {len(y)} targets")
    if n == 0:
        raise ValueError("fit needs at least one training sample, got none")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if batch_size is None:
        batch_size = n
    elif isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if isinstance(loss, Optimizer):  # fit(model, X, y, opt)
        raise TypeError(f"fit's fourth argument is the loss ('hinge', 'mse', 'bce', "
                        f"'cross_entropy' or a callable), got the optimizer "
                        f"{type(loss).__name__}: pass it by name, fit(model, X, y, "
                        f"optimizer=opt), or after the loss, fit(model, X, y, 'hinge', opt)")
    if step_fn is None:
        if optimizer is None:
            raise TypeError("fit needs an optimizer (e.g. optim.SGD(model.parameters(), lr=0.1)) "
                            "or a step_fn")
        if compiled:
            if not isinstance(loss, str):
                raise TypeError("compiled=True needs the loss by name ('hinge', 'mse', 'bce', "
                                "'cross_entropy'): a batch loss callable cannot be traced per "
                                "example (use static_train.CompiledStep with a per-example loss)")
            _check_optimizer(model, optimizer)
            # imported here: the NumPy replay is optional
            from .static_train import CompiledStep
            step_fn = CompiledStep(model, loss, optimizer, alpha, accuracy=accuracy,
                                   exact=exact)
        else:
            step_fn = TrainStep(model, loss, optimizer, alpha, accuracy)
    elif compiled:
        raise TypeError("pass either step_fn= or compiled=True, not both")
    elif not callable(step_fn):
        raise TypeError(f"step_fn must be callable as step_fn(X_batch, y_batch) -> (loss, "
                        f"accuracy), got {type(step_fn).__name__}")
    rng = _seeded(seed)  # an int (numpy's too), a random.Random or None
    per_epoch = math.ceil(n / batch_size)
    hist = History()
    order = list(range(n))
    t0 = time.perf_counter()
    bar = progress(epochs * per_epoch, desc, quiet, file)
    stop = False
    # a compiled step keeps the parameters in an array between steps; the Values get them back
    # before every callback (user code) and when training ends, also by an exception
    keep = getattr(step_fn, "keep_arrays", None)
    sync = getattr(step_fn, "sync", None)
    kept = keep() if keep is not None and sync is not None else contextlib.nullcontext()
    with kept:
        try:
            for _ in range(epochs):
                if shuffle and batch_size < n:
                    rng.shuffle(order)
                e_loss = e_acc = 0.0
                e_has_acc = True
                for start in range(0, n, batch_size):
                    idx = order[start:start + batch_size]
                    if batch_size >= n:
                        Xb, yb = X, y
                    else:
                        Xb, yb = [X[i] for i in idx], [y[i] for i in idx]
                    lr = optimizer.current_lr() if optimizer is not None else None
                    step_loss, step_acc = step_fn(Xb, yb)
                    step_loss = _data(step_loss)
                    if not math.isfinite(step_loss):
                        raise FloatingPointError(f"the loss became {step_loss!r} at step "
                                                 f"{hist.steps}: lower the learning rate")
                    hist.loss.append(step_loss)
                    hist.accuracy.append(step_acc)
                    hist.lr.append(lr)
                    e_loss += step_loss * len(idx)
                    if step_acc is None:
                        e_has_acc = False
                    else:
                        e_acc += step_acc * len(idx)
                    post = {"loss": f"{step_loss:.4f}"}
                    if step_acc is not None:
                        post["acc"] = f"{step_acc:.1%}"
                    bar.set_postfix(post, refresh=False)
                    bar.update(1)
                    if callback is not None:
                        if sync is not None:
                            sync()
                        if callback(hist):
                            stop = True
                            break
                if stop and start + batch_size < n:  # a partial epoch gets no epoch entry
                    break
                hist.epoch_loss.append(e_loss / n)
                hist.epoch_accuracy.append(e_acc / n if e_has_acc else None)
                if stop:
                    break
        finally:
            bar.close()
            hist.seconds = time.perf_counter() - t0
    return hist
