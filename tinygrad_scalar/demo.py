"""The demo (`make demo`, `python -m tinygrad_scalar demo`): from one neuron to two classifiers.

1. micrograd's moons setting: MLP(2, [16, 16, 1]) on 100 points, hinge loss + 1e-4 L2, SGD
   with the learning rate decaying from 1.0 to 0.1, full batch.
2. A 3-arm spiral: MLP(2, [16, 16, 3]), softmax cross-entropy, Adam on minibatches.
3. Pictures in `out/`: decision boundaries and loss curves (PNG), the graph of one neuron
   (SVG, the lecture's tanh neuron with its gradients), and the trained models (JSON).

Everything is seeded (default 1337), so two runs print the same numbers.
"""
from __future__ import annotations

import os
import time
from typing import Optional

from . import optim
from .data import make_moons, make_spiral, signed_labels
from .files import write_atomic
from .nn import MLP, Neuron
from .train import evaluate, fit

__all__ = ["run_demo", "train_moons", "train_spiral", "draw_neuron", "DEFAULT_SEED"]

DEFAULT_SEED = 1337
MOONS_STEPS = 100
SPIRAL = {"n_samples": 150, "noise": 0.2, "epochs": 30, "batch_size": 30, "lr": 0.05}


def train_moons(seed: int = DEFAULT_SEED, steps: int = MOONS_STEPS,
                quiet: bool = False, compiled: bool = False) -> tuple:
    """micrograd's demo: returns (model, X, y, history); y holds -1/+1 labels.
    compiled=True trains through the traced, NumPy-replayed graph (static.py): same numbers."""
    X, y01 = make_moons(100, noise=0.1, seed=seed)
    y = signed_labels(y01)
    model = MLP(2, [16, 16, 1], seed=seed)
    opt = optim.SGD(model.parameters(), lr=lambda k: 1.0 - 0.9 * k / steps)
    hist = fit(model, X, y, "hinge", opt, epochs=steps, alpha=1e-4, quiet=quiet,
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


def run_demo(out: str = "build", steps: Optional[int] = None, seed: Optional[int] = None,
             quiet: bool = False, compiled: bool = False) -> dict:
    """Train both classifiers, write the pictures and models into `out`, print and return a
    summary. `steps`: moons training steps (default 100); `seed`: default 1337; compiled:
    train through the traced graph replayed with NumPy (same results, much faster)."""
    steps = MOONS_STEPS if steps is None else steps
    seed = DEFAULT_SEED if seed is None else seed
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)

    moons = train_moons(seed, steps, quiet, compiled)
    m_model, mX, my, m_hist = moons
    m_loss, m_acc = evaluate(m_model, mX, my, "hinge")

    spiral = train_spiral(seed, quiet, compiled)
    s_model, sX, sy, s_hist = spiral
    s_loss, s_acc = evaluate(s_model, sX, sy, "cross_entropy")

    files = _write_pictures(out, moons, spiral)
    neuron = draw_neuron(os.path.join(out, "neuron.svg"))
    files["neuron_graph"] = neuron.pop("path")
    files["moons_model"] = os.path.join(out, "moons_model.json")
    m_model.save(files["moons_model"])
    files["spiral_model"] = os.path.join(out, "spiral_model.json")
    s_model.save(files["spiral_model"])

    summary = {
        "seed": seed,
        "moons": {"steps": m_hist.steps, "steps_to_100": m_hist.steps_to(1.0),
                  "final_loss": m_loss, "final_accuracy": m_acc,
                  "parameters": m_model.num_parameters(), "seconds": m_hist.seconds},
        "spiral": {"steps": s_hist.steps, "epochs": SPIRAL["epochs"],
                   "final_loss": s_loss, "final_accuracy": s_acc,
                   "parameters": s_model.num_parameters(), "seconds": s_hist.seconds},
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
          f"steps, {reached}; final hinge loss {m['final_loss']:.4f}, "
          f"accuracy {m['final_accuracy']:.1%} ({m['seconds']:.1f} s)")
    print(f"spiral: MLP(2, [16, 16, 3]) ({sp['parameters']} parameters), {sp['steps']} Adam "
          f"steps; final cross-entropy {sp['final_loss']:.4f}, "
          f"accuracy {sp['final_accuracy']:.1%} ({sp['seconds']:.1f} s)")
    print(f"neuron: tanh output {s['neuron']['output']:.4f}, "
          + ", ".join(f"d/d{k} = {g:.4f}" for k, g in s["neuron"]["grads"].items()))
    if "note" in s["neuron"]:
        print("note: " + s["neuron"]["note"])
    print("wrote: " + ", ".join(s["files"].values()))
    print(f"total {s['seconds']:.1f} s (seed {s['seed']})")
