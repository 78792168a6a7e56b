"""Data sets: toy 2-D sets in pure Python (moons, circles, blobs, spirals) and one real one,
the 8x8 handwritten digits (`load_digits`, read from scikit-learn's package).

Each toy generator returns `(X, y)`: X a list of [x0, x1] points (floats), y a list of int
class labels (0, 1, ...). `seed=` (an int or a random.Random) makes the draw reproducible;
without it every call differs. The shapes follow scikit-learn's generators of the same names.
"""
from __future__ import annotations

import math
import numbers
import random
from typing import Sequence, Union

from .checks import hyperparameter

__all__ = ["make_moons", "make_circles", "make_blobs", "make_spiral", "signed_labels",
           "train_test_split", "load_digits", "seeded_rng", "DIGITS_INSTALL_HINT"]

Seed = Union[int, random.Random, None]
Points = list[list[float]]
Labels = list[int]


def seeded_rng(seed: Seed) -> random.Random:
    """A random.Random from an int (Python's or NumPy's), the given Random itself, or a fresh
    unseeded one for None; anything else is a TypeError."""
    if seed is None:
        return random.Random()
    if isinstance(seed, random.Random):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):  # numpy ints too
        raise TypeError(f"seed must be an int or a random.Random, got {type(seed).__name__}: "
                        f"{seed!r}")
    return random.Random(int(seed))


_rng = seeded_rng


def _count(n, what: str, least: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < least:
        raise ValueError(f"{what} must be an int >= {least}, got {n!r}")
    return int(n)


def _nonneg(x, what: str) -> float:
    return hyperparameter(x, what)


def _box(box) -> tuple[float, float]:
    """center_box as (low, high), finite with low < high."""
    try:
        lo, hi = box
    except (TypeError, ValueError):
        raise TypeError(f"center_box must be a pair (low, high) of numbers, e.g. (-10.0, 10.0), "
                        f"got {type(box).__name__}: {box!r}") from None
    lo = hyperparameter(lo, "center_box[0] (low)", -math.inf)
    hi = hyperparameter(hi, "center_box[1] (high)", -math.inf)
    if not lo < hi:
        raise ValueError(f"center_box must be (low, high) with low < high, got {box!r}")
    return lo, hi


def _finish(X: Points, y: Labels, rng: random.Random, noise: float, shuffle: bool):
    if noise:
        g = rng.gauss
        X = [[a + g(0.0, noise), b + g(0.0, noise)] for a, b in X]
    if shuffle:
        order = list(range(len(X)))
        rng.shuffle(order)
        X, y = [X[i] for i in order], [y[i] for i in order]
    return X, y


def _linspace(a: float, b: float, n: int, endpoint: bool = True) -> list[float]:
    if n == 1:
        return [a]
    step = (b - a) / ((n - 1) if endpoint else n)
    return [a + i * step for i in range(n)]


def make_moons(n_samples: int = 100, noise: float = 0.0, seed: Seed = None,
               shuffle: bool = True) -> tuple[Points, Labels]:
    """Two interleaving half circles: class 0 the upper moon, class 1 the lower one.

    Not linearly separable, so a network needs a hidden layer: micrograd's demo uses
    100 points with noise 0.1.
    """
    n = _count(n_samples, "n_samples", 2)
    noise = _nonneg(noise, "noise")
    rng = _rng(seed)
    n_out = n // 2
    n_in = n - n_out
    X = [[math.cos(t), math.sin(t)] for t in _linspace(0.0, math.pi, n_out)]
    X += [[1.0 - math.cos(t), 0.5 - math.sin(t)] for t in _linspace(0.0, math.pi, n_in)]
    y = [0] * n_out + [1] * n_in
    return _finish(X, y, rng, noise, shuffle)


def make_circles(n_samples: int = 100, noise: float = 0.0, factor: float = 0.5,
                 seed: Seed = None, shuffle: bool = True) -> tuple[Points, Labels]:
    """Two concentric circles: class 0 of radius 1, class 1 of radius `factor` (< 1)."""
    n = _count(n_samples, "n_samples", 2)
    noise = _nonneg(noise, "noise")
    factor = hyperparameter(factor, "factor", 0.0, 1.0, hi_open=True)
    rng = _rng(seed)
    n_out = n // 2
    n_in = n - n_out
    X = [[math.cos(t), math.sin(t)] for t in _linspace(0.0, 2 * math.pi, n_out, False)]
    X += [[factor * math.cos(t), factor * math.sin(t)]
          for t in _linspace(0.0, 2 * math.pi, n_in, False)]
    y = [0] * n_out + [1] * n_in
    return _finish(X, y, rng, noise, shuffle)


def make_blobs(n_samples: int = 100, centers: Union[int, Sequence[Sequence[float]]] = 3,
               cluster_std: float = 1.0, center_box: tuple[float, float] = (-10.0, 10.0),
               seed: Seed = None, shuffle: bool = True) -> tuple[Points, Labels]:
    """Gaussian blobs around `centers` (a count, drawn uniformly in center_box, or a list of
    2-D points); the samples are split as evenly as possible and labelled by blob."""
    n = _count(n_samples, "n_samples")
    std = _nonneg(cluster_std, "cluster_std")
    rng = _rng(seed)
    if isinstance(centers, numbers.Integral) and not isinstance(centers, bool):
        k = _count(centers, "centers")
        lo, hi = _box(center_box)
        cs = [[rng.uniform(lo, hi), rng.uniform(lo, hi)] for _ in range(k)]
    else:
        try:
            pairs = [(a, b) for a, b in centers]
        except (TypeError, ValueError):
            raise ValueError(f"centers must be a count or a list of 2-D points, "
                             f"got {centers!r}") from None
        if not pairs:
            raise ValueError("centers is an empty list: need at least one blob")
        cs = [[hyperparameter(a, f"centers[{i}][0]", -math.inf),
               hyperparameter(b, f"centers[{i}][1]", -math.inf)] for i, (a, b) in enumerate(pairs)]
    k = len(cs)
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    X, y = [], []
    g = rng.gauss
    for c, (cx, cy) in enumerate(cs):
        for _ in range(sizes[c]):
            X.append([cx + g(0.0, std), cy + g(0.0, std)])
            y.append(c)
    return _finish(X, y, rng, 0.0, shuffle)


def make_spiral(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2,
                turns: float = 4.0, seed: Seed = None,
                shuffle: bool = True) -> tuple[Points, Labels]:
    """`n_classes` interleaved spiral arms (CS231n's toy set), radius 0..1.

    Arm j has angles from j*turns to (j+1)*turns radians plus Gaussian angle noise `noise`;
    the samples are split as evenly as possible between the arms.
    """
    n = _count(n_samples, "n_samples")
    k = _count(n_classes, "n_classes")
    if n < k:
        raise ValueError(f"n_samples={n} is fewer than n_classes={k}: every arm needs a point")
    noise = _nonneg(noise, "noise")
    turns = hyperparameter(turns, "turns (radians per arm)", 0.0, lo_open=True)
    rng = _rng(seed)
    X, y = [], []
    g = rng.gauss
    for j in range(k):
        m = n // k + (1 if j < n % k else 0)
        radii = _linspace(0.0, 1.0, m)
        angles = _linspace(j * turns, (j + 1) * turns, m)
        for r, t in zip(radii, angles):
            t += g(0.0, noise) if noise else 0.0
            X.append([r * math.sin(t), r * math.cos(t)])
            y.append(j)
    return _finish(X, y, rng, 0.0, shuffle)


def signed_labels(y: Sequence[int]) -> list[int]:
    """0/1 labels as -1/+1 (what the hinge loss expects)."""
    out = []
    for i, t in enumerate(y):
        if t not in (0, 1) or isinstance(t, bool):
            raise ValueError(f"signed_labels needs 0/1 labels, got {t!r} at position {i}")
        out.append(2 * int(t) - 1)
    return out


def train_test_split(X: Sequence, y: Sequence, test_fraction: float = 0.25,
                     seed: Seed = None) -> tuple[list, list, list, list]:
    """Shuffle and split into (X_train, X_test, y_train, y_test), as scikit-learn orders them."""
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
    test_fraction = hyperparameter(test_fraction, "test_fraction", 0.0, 1.0, lo_open=True,
                                   hi_open=True)
    n_test = max(1, round(len(X) * test_fraction))
    if n_test >= len(X):
        raise ValueError(f"{len(X)} samples are too few to split off {n_test} for testing")
    order = list(range(len(X)))
    _rng(seed).shuffle(order)
    test, train = order[:n_test], order[n_test:]
    return ([X[i] for i in train], [X[i] for i in test], [y[i] for i in train],
            [y[i] for i in test])


DIGITS_INSTALL_HINT = ("load_digits needs scikit-learn, which ships the 8x8 digits inside its "
                       "package (nothing is downloaded): pip install scikit-learn, or install "
                       "this project with its extra: pip install 'tinygrad_scalar[digits]'")


def load_digits(test_fraction: float = 0.25, seed: Seed = 0) -> tuple[list, list, list, list]:
    """The 1,797 handwritten digits (8x8 pixels, classes 0-9) that scikit-learn ships with its
    package (UCI's optical recognition set), as (X_train, X_test, y_train, y_test).

    Each X row is the 64 pixels of one image, row by row, scaled from 0..16 to [0, 1] (so a
    network's inputs are of order 1); y holds the digit (an int). The split is
    `train_test_split(X, y, test_fraction, seed)`: the same seed gives the same split. Needs
    scikit-learn (the `digits` extra); without it, an ImportError says what to install.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError(DIGITS_INSTALL_HINT) from None
    bunch = _sk_load_digits()
    X = (bunch.data / 16.0).tolist()
    y = [int(t) for t in bunch.target]
    return train_test_split(X, y, test_fraction, seed)
