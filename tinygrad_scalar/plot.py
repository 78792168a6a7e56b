"""Pictures of training: the loss (and accuracy) curve and a 2-D decision boundary.

Figures are made with matplotlib's object API (`matplotlib.figure.Figure`), never pyplot, so
nothing here opens a window or changes the global backend: scripts save PNGs headless, and in
a notebook the returned Figure displays itself as a PNG, even without `%matplotlib inline`
(or pass `ax=` to draw into your own axes).

The decision boundary needs the model's output on thousands of grid points; an MLP, Layer or
Neuron is evaluated there with NumPy from its current weights (the same arithmetic as the
Values, checked against them in the tests); any other model is called point by point
under no_grad.
"""
from __future__ import annotations

import io
import numbers
import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .engine import Value, no_grad
from .files import write_atomic
from .nn import MLP, Layer, Neuron

__all__ = ["plot_loss", "plot_decision_boundary", "predict_grid", "plot_digits", "plot_confusion",
           "confusion_matrix"]

PathLike = Union[str, os.PathLike]
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def _figure(ax, size=(6.0, 4.5)):
    if ax is not None:
        return ax.figure, ax
    fig = _figure_class()(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _figure_class():
    """A matplotlib Figure that shows itself in Jupyter as a PNG, with or without pyplot."""
    global _DisplayFigure
    if _DisplayFigure is None:
        from matplotlib.figure import Figure

        class DisplayFigure(Figure):
            def _repr_png_(self) -> bytes:
                buf = io.BytesIO()
                self.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.08)
                return buf.getvalue()

        _DisplayFigure = DisplayFigure
    return _DisplayFigure


_DisplayFigure = None


def _save(fig, path: Optional[PathLike]) -> None:
    if path is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        os.makedirs(folder, exist_ok=True)
        buf = io.BytesIO()
        fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
        # cropped to what is drawn: no white bands around an equal-aspect plot
        fig.savefig(buf, dpi=110, format=fmt, bbox_inches="tight", pad_inches=0.08)
        write_atomic(path, buf.getvalue())


def _curves(history: Any) -> tuple[list, Optional[list]]:
    """(loss per step, accuracy per step or None) from a History or a dict, or a clear error."""
    if isinstance(history, dict):
        if "loss" not in history:
            raise ValueError(f"plot_loss: a dict history needs a 'loss' list (and optionally "
                             f"'accuracy'), got keys {sorted(map(str, history))}")
        loss, acc = history["loss"], history.get("accuracy")
    elif hasattr(history, "loss") and hasattr(history, "accuracy"):
        loss, acc = history.loss, history.accuracy
    else:
        raise TypeError(f"plot_loss needs the History that fit returns (or a dict with a "
                        f"'loss' list), got {type(history).__name__}: {history!r:.60}")
    if isinstance(loss, np.ndarray) and loss.ndim == 1:
        loss = loss.tolist()
    if isinstance(acc, np.ndarray) and acc.ndim == 1:
        acc = acc.tolist()
    if isinstance(loss, (str, bytes)) or not isinstance(loss, Sequence):
        raise TypeError(f"plot_loss: 'loss' must be a list of numbers, got "
                        f"{type(loss).__name__}: {loss!r:.60}")
    if not loss:
        raise ValueError("plot_loss: the history has no steps to plot")
    for i, v in enumerate(loss):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"plot_loss: loss[{i}] must be a number, got "
                            f"{type(v).__name__}: {v!r:.60}")
    if acc is not None and (isinstance(acc, (str, bytes)) or not isinstance(acc, Sequence)
                            or (acc and len(acc) != len(loss))):
        raise ValueError(f"plot_loss: 'accuracy' must be a list as long as 'loss' "
                         f"({len(loss)} steps), got {acc!r:.60}")
    return list(loss), acc


def plot_loss(history: Any, ax=None, path: Optional[PathLike] = None,
              title: str = "training") -> Any:
    """Loss per step (left axis, log scale) and accuracy per step (right axis, when recorded).

    `history` is a train.History or a dict with 'loss' (and optionally 'accuracy') lists.
    Returns the Figure; `path` also saves it (PNG by its extension).
    """
    loss, acc = _curves(history)
    from matplotlib.ticker import MaxNLocator
    fig, ax = _figure(ax)
    steps = range(len(loss))
    ax.plot(steps, loss, color=_COLORS[0], lw=1.5, label="loss")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # no "step 2.5"
    ax.set_ylabel("loss", color=_COLORS[0])
    if min(loss) > 0:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if acc and all(a is not None for a in acc):
        ax2 = ax.twinx()
        ax2.plot(steps, [100 * a for a in acc], color=_COLORS[1], lw=1.2, label="accuracy")
        ax2.set_ylabel("accuracy (%)", color=_COLORS[1])
        ax2.set_ylim(0, 102)
    _save(fig, path)
    return fig


_NP_ACT: dict[str, Callable] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # = 1/(1+e^-z), never overflows
    "linear": lambda z: z,
}


def _layers(model) -> Optional[list]:
    """(W, b, activation) per layer, from the current .data, or None for other models."""
    if isinstance(model, Neuron):
        return [(np.array([[w.data for w in model.w]]), np.array([model.b.data]),
                 model.activation)]
    if isinstance(model, Layer):
        groups = [model]
    elif isinstance(model, MLP):
        groups = model.layers
    else:
        return None
    return [(np.array([[w.data for w in n.w] for n in g.neurons]),
             np.array([n.b.data for n in g.neurons]), g.activation) for g in groups]


def predict_grid(model: Callable, points: np.ndarray) -> np.ndarray:
    """The model's outputs at each row of `points` (N x nin), as an N x nout float array."""
    points = np.asarray(points, dtype=float)
    layers = _layers(model)
    if layers is not None:
        h = points
        for W, b, act in layers:
            h = _NP_ACT[act](h @ W.T + b)
        return h
    rows = []
    with no_grad():
        for p in points:
            out = model([float(v) for v in p])
            out = out if isinstance(out, (list, tuple)) else [out]
            rows.append([o.data if isinstance(o, Value) else float(o) for o in out])
    return np.array(rows, dtype=float)


def _sigmoid_output(model) -> bool:
    """A one-output module ending in a sigmoid: its output is a probability, split at 0.5."""
    if isinstance(model, MLP):
        return False  # an MLP's last layer is linear
    return isinstance(model, (Neuron, Layer)) and model.activation == "sigmoid"


def _regions(model, out: np.ndarray) -> tuple:
    """(class index per row of `out`, signed score or None): one output is split at 0 (at
    0.5 after a sigmoid), region 0 the negative side (label -1 or 0); several: the largest."""
    if out.shape[1] == 1:
        threshold = 0.5 if _sigmoid_output(model) else 0.0
        return (out[:, 0] > threshold).astype(int), out[:, 0] - threshold
    return out.argmax(axis=1), None


def _label_indices(labels: list, n_outputs: int) -> list:
    """The colour index of each label, the same index the predicted regions use.

    One output: 1 for the positive side (label > 0, for -1/+1 and 0/1 labels alike), else 0.
    Several outputs: a class index label is its own colour. So the colours match the regions
    even when a class is missing from the points shown (a test split, one class only).
    Other labels fall back to their rank among the labels present.
    """
    def is_int(t):
        return isinstance(t, numbers.Integral) or (isinstance(t, numbers.Real)
                                                   and float(t).is_integer())
    if n_outputs == 1 and all(isinstance(t, numbers.Real) and t in (-1, 0, 1) for t in labels):
        return [int(t > 0) for t in labels]
    if n_outputs > 1 and all(is_int(t) and 0 <= t < n_outputs for t in labels):
        return [int(t) for t in labels]
    index = {c: i for i, c in enumerate(sorted(set(labels)))}
    return [index[t] for t in labels]


def plot_decision_boundary(model: Callable, X: Sequence, y: Sequence, ax=None,
                           path: Optional[PathLike] = None, title: str = "decision boundary",
                           resolution: int = 200, margin: float = 0.5) -> Any:
    """The classes a 2-input model predicts over the plane, with the data on top.

    One output: class by the sign of the score (the hinge/BCE convention, boundary at 0), or
    by 0.5 for a Neuron or Layer whose activation is the sigmoid (a probability); several
    outputs: the largest one (cross-entropy). Labels may be -1/+1, 0/1 or 0..k-1; each point
    has the colour of the region of its own class, also when some class is absent from `y`.
    `resolution` grid points per axis. Returns the Figure; `path` also saves it.
    """
    from matplotlib.colors import ListedColormap
    pts = np.asarray(X, dtype=float)
    labels = list(y)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary needs 2-D points (N x 2), got shape {pts.shape}")
    if len(labels) != len(pts):
        raise ValueError(f"{len(pts)} points but {len(labels)} labels")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    out = predict_grid(model, np.column_stack([gx.ravel(), gy.ravel()]))
    pred, score = _regions(model, out)
    if score is not None:
        score = score.reshape(gx.shape)
    point_index = _label_indices(labels, out.shape[1])
    k = max(2 if out.shape[1] == 1 else out.shape[1], max(point_index) + 1)
    palette = [_COLORS[i % len(_COLORS)] for i in range(k)]
    cmap = ListedColormap(palette)
    # the figure takes the data's shape (axes are equal-aspect), so it has no empty bands
    aspect = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
    fig, ax = _figure(ax, (5.5, min(max(4.6 * aspect + 0.9, 2.5), 9.0)))
    ax.contourf(gx, gy, pred.reshape(gx.shape), levels=np.arange(k + 1) - 0.5, cmap=cmap,
                alpha=0.25)
    if score is not None and score.min() < 0 < score.max():
        ax.contour(gx, gy, score, levels=[0.0], colors="k", linewidths=1.0)
    colors = [palette[i] for i in point_index]
    ax.scatter(pts[:, 0], pts[:, 1], c=colors, s=22, edgecolors="k", linewidths=0.5)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="box")
    _save(fig, path)
    return fig


def _class_list(v, what: str) -> list:
    out = []
    for i, t in enumerate(v):
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"{what}[{i}] must be a class index (an int >= 0), got {t!r}")
        out.append(int(t))
    return out


def plot_digits(images: Sequence, labels: Sequence[int], predictions: Optional[Sequence] = None,
                columns: int = 10, path: Optional[PathLike] = None,
                title: str = "digits") -> Any:
    """A grid of square grey images (each a flat list of side*side pixels in [0, 1], e.g. the
    8x8 digits of data.load_digits), captioned with the label, or with the prediction and the
    label when `predictions` is given: wrong ones in red, so they stand out. Returns the
    Figure; `path` also saves it."""
    imgs = np.asarray(images, dtype=float)
    if imgs.ndim != 2 or imgs.shape[0] == 0:
        raise ValueError(f"plot_digits needs a list of flat images (N x pixels), got shape "
                         f"{imgs.shape}")
    side = int(round(imgs.shape[1] ** 0.5))
    if side * side != imgs.shape[1]:
        raise ValueError(f"plot_digits: {imgs.shape[1]} pixels per image is not a square")
    labels = _class_list(labels, "labels")
    preds = None if predictions is None else _class_list(predictions, "predictions")
    if len(labels) != len(imgs) or (preds is not None and len(preds) != len(imgs)):
        raise ValueError(f"plot_digits: {len(imgs)} images but {len(labels)} labels"
                         + ("" if preds is None else f" and {len(preds)} predictions"))
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be an int >= 1, got {columns!r}")
    cols = min(columns, len(imgs))
    rows = -(-len(imgs) // cols)
    fig = _figure_class()(figsize=(0.9 * cols, 1.05 * rows + 0.4), layout="constrained")
    for k, img in enumerate(imgs):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(img.reshape(side, side), cmap="gray_r", vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        if preds is None:
            ax.set_title(str(labels[k]), fontsize=9)
        else:
            wrong = preds[k] != labels[k]
            ax.set_title(f"{preds[k]}" + (f" (is {labels[k]})" if wrong else ""), fontsize=8,
                         color=_COLORS[1] if wrong else "black")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return fig


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int],
                     n_classes: Optional[int] = None) -> list[list[int]]:
    """counts[t][p]: how many samples of class t were predicted as p (rows: the truth)."""
    t, p = _class_list(y_true, "y_true"), _class_list(y_pred, "y_pred")
    if len(t) != len(p) or not t:
        raise ValueError(f"confusion_matrix needs as many predictions as labels (and at least "
                         f"one), got {len(t)} labels and {len(p)} predictions")
    if n_classes is None:
        k = max(t + p) + 1
    elif isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) \
            or n_classes < 1:
        raise ValueError(f"n_classes must be an int >= 1 or None, got {n_classes!r}")
    else:
        k = int(n_classes)
    if max(t + p) >= k:
        raise ValueError(f"class {max(t + p)} is outside 0..{k - 1} (n_classes={k})")
    counts = [[0] * k for _ in range(k)]
    for a, b in zip(t, p):
        counts[a][b] += 1
    return counts


def plot_confusion(y_true: Sequence[int], y_pred: Sequence[int],
                   n_classes: Optional[int] = None, ax=None, path: Optional[PathLike] = None,
                   title: str = "confusion matrix") -> Any:
    """The confusion matrix as a picture: rows the true class, columns the prediction, each
    cell its count (the diagonal are the right answers). Returns the Figure; `path` saves it."""
    counts = np.array(confusion_matrix(y_true, y_pred, n_classes))
    k = len(counts)
    fig, ax = _figure(ax, (5.0, 4.6))
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            c = counts[i, j]
            if c:
                ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                        color="white" if c > counts.max() / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(counts) / counts.sum()
    ax.set_title(f"{title} ({acc:.1%} right)")
    _save(fig, path)
    return fig
