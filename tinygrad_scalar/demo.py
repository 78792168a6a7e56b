"""The demo (`make demo`, `python -m tinygrad_scalar demo`): from one neuron to a real data set.

1. micrograd's moons setting: MLP(2, [16, 16, 1]) on 100 points, hinge loss + 1e-4 L2, SGD
   with the learning rate decaying from 1.0 to 0.1, full batch.
2. A 3-arm spiral: MLP(2, [16, 16, 3]), softmax cross-entropy, Adam on minibatches.
3. The 8x8 handwritten digits (scikit-learn's bundled copy, see data.load_digits):
   MLP(64, [16, 10]) trained through the compiled path (static_train.CompiledStep: the
   per-example graph is traced once and every minibatch replayed with NumPy), tested on a
   held-out quarter. Skipped, with a note, when scikit-learn is not installed.
4. Pictures in `out/`: decision boundaries and loss curves (PNG), sample test digits with
   their predictions and the digits' confusion matrix (PNG), the graph of one neuron (SVG,
   the lecture's tanh neuron with its gradients), and the trained models (JSON).

Everything is seeded (default 1337), so two runs print the same numbers.
"""
from __future__ import annotations

import os
import time
from typing import Optional

from . import optim
from .data import DIGITS_INSTALL_HINT, load_digits, make_moons, make_spiral, signed_labels
from .files import write_atomic
from .nn import MLP, Neuron
from .train import evaluate, fit

__all__ = ["run_demo", "train_moons", "train_spiral", "train_digits", "draw_neuron",
           "DEFAULT_SEED", "DIGITS"]

DEFAULT_SEED = 1337
MOONS_STEPS = 100
MOONS_ALPHA = 1e-4
SPIRAL = {"n_samples": 150, "noise": 0.2, "epochs": 30, "batch_size": 30, "lr": 0.05}
DIGITS = {"hidden": 16, "epochs": 15, "batch_size": 128, "lr": 0.02, "alpha": 1e-4,
          "test_fraction": 0.25}


def train_moons(seed: int = DEFAULT_SEED, steps: int = MOONS_STEPS,
                quiet: bool = False, compiled: bool = False) -> tuple:
    """micrograd's demo: returns (model, X, y, history); y holds -1/+1 labels.
    compiled=True trains through the traced, NumPy-replayed graph (static.py): same numbers."""
    X, y01 = make_moons(100, noise=0.1, seed=seed)
    y = signed_labels(y01)
    model = MLP(2, [16, 16, 1], seed=seed)
    opt = optim.SGD(model.parameters(), lr=lambda k: 1.0 - 0.9 * k / steps)
    hist = fit(model, X, y, "hinge", opt, epochs=steps, alpha=MOONS_ALPHA, quiet=quiet,
               desc="moons (SGD)", compiled=compiled)
    return model, X, y, hist


def train_spiral(seed: int = DEFAULT_SEED, quiet: bool = False, compiled: bool = False) -> tuple:
    """Three spiral arms with softmax cross-entropy and Adam: (model, X, y, history)."""
    s = SPIRAL
    X, y = make_spiral(s["n_samples"], 3, noise=s["noise"], seed=seed)
    model = MLP(2, [16, 16, 3], seed=seed)
    opt = optim.Adam(model.parameters(), lr=s["lr"])
    hist = fit(model, X, y, "cross_entropy", opt, epochs=s["epochs"],
               batch_size=s["batch_size"], seed=seed, quiet=quiet, desc="spiral (Adam)",
               compiled=compiled)
    return model, X, y, hist


def _fan_in_scaled(model: MLP) -> MLP:
    """Weights uniform in +-sqrt(3 / fan-in) (LeCun's scaling, variance 1 / fan-in) instead of
    micrograd's +-1: with 64 inputs the +-1 start puts the first layer's sums far out, and
    training needs more epochs to reach the same test accuracy."""
    for layer in model.layers:
        for neuron in layer.neurons:
            scale = (3.0 / len(neuron.w)) ** 0.5
            for w in neuron.w:
                w.data *= scale
    return model


def train_digits(seed: int = DEFAULT_SEED, quiet: bool = False,
                 epochs: Optional[int] = None) -> dict:
    """The 8x8 digits: MLP(64, [16, 10]) with softmax cross-entropy + L2 and Adam (learning
    rate decaying linearly to a tenth), on minibatches, through the compiled replay in its
    fast mode (static_train.CompiledStep, exact=False: layers as matrix products). Returns the
    model, the held-out images and labels, the model's predictions on them, the test accuracy
    and the History."""
    # predict_grid: the NumPy forward from the current weights, tested equal to the engine
    from .plot import predict_grid
    d = DIGITS
    epochs = d["epochs"] if epochs is None else epochs
    X_train, X_test, y_train, y_test = load_digits(d["test_fraction"], seed)
    model = _fan_in_scaled(MLP(64, [d["hidden"], 10], seed=seed))
    total = epochs * -(-len(X_train) // d["batch_size"])
    opt = optim.Adam(model.parameters(),
                     lr=lambda k: d["lr"] * (1.0 - 0.9 * k / max(total, 1)))
    # compiled=True: fit traces one example's loss into a static_train.CompiledStep and
    # replays every minibatch with NumPy; exact=False runs each layer as one matrix product
    # (static.fuse, static.codegen): the same accuracy, about 20x faster than exact=True here
    hist = fit(model, X_train, y_train, "cross_entropy", opt, epochs=epochs,
               batch_size=d["batch_size"], alpha=d["alpha"], seed=seed, quiet=quiet,
               desc="digits (compiled)", compiled=True, exact=False)
    scores = predict_grid(model, X_test)
    pred = [int(i) for i in scores.argmax(axis=1)]
    acc = sum(p == t for p, t in zip(pred, y_test)) / len(y_test)
    return {"model": model, "X_test": X_test, "y_test": y_test, "predictions": pred,
            "accuracy": acc, "history": hist, "train_size": len(X_train)}


def draw_neuron(path: str) -> dict:
    """The lecture's neuron tanh(x0*w0 + x1*w1 + b) after backward, drawn as SVG at `path`."""
    import graphviz

    from .viz import draw_dot  # imported here: drawing is optional at import time
    n = Neuron(2, activation="tanh", seed=0)
    n.load_state_dict({"w0": -3.0, "w1": 1.0, "b": 6.8813735870195432})
    out = n([2.0, 0.0])
    z = out._prev[0]
    for i, prod in enumerate(z._prev[:-1]):  # name the products as the lecture does
        prod.label = f"x{i}*w{i}"
    out.backward()
    g = draw_dot(out, format="svg", rankdir="LR", show_grad=True, edge_labels=True)
    info = {"output": out.data, "grads": {k: p.grad for k, p in n.named_parameters()},
            "path": path}
    try:
        svg = g.pipe(format="svg")
    except graphviz.ExecutableNotFound:  # no `dot`: keep the DOT text, say how to fix it
        info["path"] = os.path.splitext(path)[0] + ".gv"
        write_atomic(info["path"], g.source)
        info["note"] = ("Graphviz's `dot` is not installed, so the neuron graph was written as "
                        f"DOT text to {info['path']}; install graphviz to get the SVG")
        return info
    write_atomic(path, svg)
    return info


def _write_pictures(out: str, moons: tuple, spiral: tuple) -> dict:
    from .plot import plot_decision_boundary, plot_loss
    files = {}
    m_model, mX, my, m_hist = moons
    s_model, sX, sy, s_hist = spiral
    files["moons_boundary"] = os.path.join(out, "moons_boundary.png")
    plot_decision_boundary(m_model, mX, my, path=files["moons_boundary"],
                           title="moons: MLP(2, [16, 16, 1]), hinge + L2, SGD")
    files["spiral_boundary"] = os.path.join(out, "spiral_boundary.png")
    plot_decision_boundary(s_model, sX, sy, path=files["spiral_boundary"],
                           title="spiral: MLP(2, [16, 16, 3]), cross-entropy, Adam")
    files["moons_loss"] = os.path.join(out, "moons_loss.png")
    # the training loss includes the L2 term, so it ends above the final hinge loss printed
    plot_loss(m_hist, path=files["moons_loss"],
              title="moons: hinge + L2 loss and accuracy per step")
    files["spiral_loss"] = os.path.join(out, "spiral_loss.png")
    plot_loss(s_hist, path=files["spiral_loss"],
              title="spiral: cross-entropy and accuracy per minibatch step")
    return files


def _write_digit_pictures(out: str, digits: dict) -> dict:
    """40 test digits with their predictions (the mistakes first, up to 10), and the
    confusion matrix of the whole test set."""
    from .plot import plot_confusion, plot_digits
    files = {"digits_predictions": os.path.join(out, "digits_predictions.png"),
             "digits_confusion": os.path.join(out, "digits_confusion.png")}
    pred, truth = digits["predictions"], digits["y_test"]
    wrong = [i for i, (p, t) in enumerate(zip(pred, truth)) if p != t][:10]
    shown = wrong + [i for i in range(len(truth)) if i not in wrong][:40 - len(wrong)]
    plot_digits([digits["X_test"][i] for i in shown], [truth[i] for i in shown],
                [pred[i] for i in shown], path=files["digits_predictions"],
                title=f"digits: {len(wrong)} test images the model got wrong (red, with the "
                      f"true digit) and {len(shown) - len(wrong)} more, with its predictions")
    plot_confusion(digits["y_test"], digits["predictions"], 10, path=files["digits_confusion"],
                   title=f"digits, {len(digits['y_test'])} test images")
    return files


def run_demo(out: str = "build", steps: Optional[int] = None, seed: Optional[int] = None,
             quiet: bool = False, compiled: bool = False, digits: bool = True) -> dict:
    """Train the classifiers, write the pictures and models into `out`, print and return a
    summary. `steps`: moons training steps (default 100); `seed`: default 1337; compiled:
    train moons and spiral through the traced graph replayed with NumPy (same results, much
    faster; the digits always are); digits=False leaves the digits out."""
    steps = MOONS_STEPS if steps is None else steps
    seed = DEFAULT_SEED if seed is None else seed
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)

    moons = train_moons(seed, steps, quiet, compiled)
    m_model, mX, my, m_hist = moons
    m_loss, m_acc = evaluate(m_model, mX, my, "hinge")
    m_l2 = MOONS_ALPHA * sum(p.data * p.data for p in m_model.parameters())

    spiral = train_spiral(seed, quiet, compiled)
    s_model, sX, sy, s_hist = spiral
    s_loss, s_acc = evaluate(s_model, sX, sy, "cross_entropy")

    skipped = None
    try:
        digits = train_digits(seed, quiet) if digits else None
        if digits is None:
            skipped = "left out (digits=False)"
    except ImportError as e:  # no scikit-learn: the rest of the demo still runs
        if str(e) != DIGITS_INSTALL_HINT:
            raise
        digits, skipped = None, "skipped: " + DIGITS_INSTALL_HINT

    files = _write_pictures(out, moons, spiral)
    if digits is not None:
        files.update(_write_digit_pictures(out, digits))
    neuron = draw_neuron(os.path.join(out, "neuron.svg"))
    files["neuron_graph"] = neuron.pop("path")
    files["moons_model"] = os.path.join(out, "moons_model.json")
    m_model.save(files["moons_model"])
    files["spiral_model"] = os.path.join(out, "spiral_model.json")
    s_model.save(files["spiral_model"])

    summary = {
        "seed": seed,
        "moons": {"steps": m_hist.steps, "steps_to_100": m_hist.steps_to(1.0),
                  "last_step_loss": m_hist.loss[-1], "final_loss": m_loss,
                  "final_loss_l2": m_loss + m_l2, "final_accuracy": m_acc,
                  "parameters": m_model.num_parameters(), "seconds": m_hist.seconds},
        "spiral": {"steps": s_hist.steps, "epochs": SPIRAL["epochs"],
                   "final_loss": s_loss, "final_accuracy": s_acc,
                   "parameters": s_model.num_parameters(), "seconds": s_hist.seconds},
        "digits": {"skipped": skipped} if digits is None else {
            "test_accuracy": digits["accuracy"], "test_size": len(digits["y_test"]),
            "train_size": digits["train_size"], "steps": digits["history"].steps,
            "epochs": len(digits["history"].epoch_loss),
            "parameters": digits["model"].num_parameters(), "hidden": DIGITS["hidden"],
            "seconds": digits["history"].seconds},
        "neuron": neuron,
        "files": files,
        "seconds": time.perf_counter() - t0,
    }
    _print_summary(summary)
    return summary


def _print_summary(s: dict) -> None:
    m, sp = s["moons"], s["spiral"]
    reached = (f"100% after {m['steps_to_100']} steps" if m["steps_to_100"] is not None
               else "never 100%")
    print(f"moons : MLP(2, [16, 16, 1]) ({m['parameters']} parameters), {m['steps']} SGD "
          f"steps, {reached}; final accuracy {m['final_accuracy']:.1%} ({m['seconds']:.1f} s)")
    print(f"        loss: hinge + L2 {m['last_step_loss']:.4f} at the last step (where "
          f"moons_loss.png ends); after training hinge {m['final_loss']:.4f}, "
          f"hinge + L2 {m['final_loss_l2']:.4f}")
    print(f"spiral: MLP(2, [16, 16, 3]) ({sp['parameters']} parameters), {sp['steps']} Adam "
          f"steps; final cross-entropy {sp['final_loss']:.4f}, "
          f"accuracy {sp['final_accuracy']:.1%} ({sp['seconds']:.1f} s)")
    d = s["digits"]
    if "skipped" in d:
        print("digits: " + d["skipped"])
    else:
        print(f"digits: MLP(64, [{d['hidden']}, 10]) ({d['parameters']} parameters), compiled, "
              f"{d['steps']} Adam steps over {d['epochs']} epochs of {d['train_size']} images; "
              f"test accuracy {d['test_accuracy']:.1%} on {d['test_size']} held-out images "
              f"({d['seconds']:.1f} s)")
    print(f"neuron: tanh output {s['neuron']['output']:.4f}, "
          + ", ".join(f"d/d{k} = {g:.4f}" for k, g in s["neuron"]["grads"].items()))
    if "note" in s["neuron"]:
        print("note: " + s["neuron"]["note"])
    print("wrote: " + ", ".join(s["files"].values()))
    print(f"total {s['seconds']:.1f} s (seed {s['seed']})")
