"""Toy data sets: shapes, labels, geometry and seeding."""
import math
import random

import pytest

from tinygrad_scalar.data import (make_blobs, make_circles, make_moons, make_spiral,
                                  signed_labels, train_test_split)


def _is_points(X, n):
    return (len(X) == n and all(len(p) == 2 and all(isinstance(c, float) for c in p) for p in X))


def test_moons_geometry_without_noise():
    X, y = make_moons(10, seed=0)
    assert _is_points(X, 10) and sorted(y) == [0] * 5 + [1] * 5
    for (a, b), c in zip(X, y):
        if c == 0:  # the upper unit half circle
            assert math.hypot(a, b) == pytest.approx(1.0) and b >= -1e-12
        else:  # the lower one, centred at (1, 0.5)
            assert math.hypot(a - 1.0, b - 0.5) == pytest.approx(1.0) and b <= 0.5 + 1e-12
    X, y = make_moons(7, shuffle=False)
    assert y == [0, 0, 0, 1, 1, 1, 1]
    assert X[0] == [1.0, 0.0] and X[2] == pytest.approx([-1.0, 0.0], abs=1e-15)


def test_circles_geometry():
    X, y = make_circles(20, factor=0.3, seed=1)
    for (a, b), c in zip(X, y):
        assert math.hypot(a, b) == pytest.approx(1.0 if c == 0 else 0.3)
    assert y.count(0) == 10


def test_blobs():
    X, y = make_blobs(31, centers=[[0, 0], [10, 10], [-10, 5]], cluster_std=0.5, seed=2)
    assert _is_points(X, 31) and [y.count(c) for c in range(3)] == [11, 10, 10]
    centre = {0: (0, 0), 1: (10, 10), 2: (-10, 5)}
    for (a, b), c in zip(X, y):
        assert math.hypot(a - centre[c][0], b - centre[c][1]) < 0.5 * 6
    X, y = make_blobs(40, centers=4, seed=3)
    assert sorted(set(y)) == [0, 1, 2, 3]


def test_spiral():
    X, y = make_spiral(301, n_classes=3, seed=4)
    assert _is_points(X, 301) and [y.count(c) for c in range(3)] == [101, 100, 100]
    assert all(math.hypot(a, b) <= 1.0 + 1e-12 for a, b in X)  # noise is in the angle only
    X, y = make_spiral(40, n_classes=5, noise=0.0, seed=0, shuffle=False)
    assert sorted(set(y)) == [0, 1, 2, 3, 4]
    # without noise the arms are exact: point i of arm j at radius i/(m-1), angle j*4 + 4*i/(m-1)
    a, b = X[3]
    assert (a, b) == pytest.approx((3 / 7 * math.sin(4 * 3 / 7), 3 / 7 * math.cos(4 * 3 / 7)))


@pytest.mark.parametrize("make", [make_moons, make_circles, make_blobs, make_spiral])
def test_seeded_draws_repeat_and_differ(make):
    kw = {} if make in (make_blobs, make_spiral) else {"noise": 0.1}
    assert make(50, seed=5, **kw) == make(50, seed=5, **kw)
    assert make(50, seed=5, **kw) != make(50, seed=6, **kw)
    assert make(50, seed=random.Random(5), **kw) == make(50, seed=5, **kw)
    assert make(50, **kw) != make(50, **kw)  # no seed: fresh randomness


def test_noise_moves_points():
    X0, _ = make_moons(50, seed=1, shuffle=False)
    X1, _ = make_moons(50, noise=0.1, seed=1, shuffle=False)
    d = [math.hypot(a[0] - b[0], a[1] - b[1]) for a, b in zip(X0, X1)]
    assert 0.03 < sum(d) / len(d) < 0.3


def test_signed_labels_and_split():
    assert signed_labels([0, 1, 1, 0]) == [-1, 1, 1, -1]
    with pytest.raises(ValueError, match="0/1 labels, got 2"):
        signed_labels([0, 2])
    X, y = make_moons(20, seed=0)
    a, b, c, d = train_test_split(X, y, 0.25, seed=0)
    assert len(a) == 15 and len(b) == 5 and len(c) == 15 and len(d) == 5
    assert sorted(map(tuple, a + b)) == sorted(map(tuple, X))
    pairs = {tuple(p): t for p, t in zip(X, y)}
    assert all(pairs[tuple(p)] == t for p, t in zip(a + b, c + d))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        make_moons(1)
    with pytest.raises(ValueError, match="noise"):
        make_moons(10, noise=-1)
    with pytest.raises(ValueError, match="factor"):
        make_circles(10, factor=1.5)
    with pytest.raises(ValueError, match="fewer than n_classes"):
        make_spiral(2, n_classes=3)
    with pytest.raises(ValueError, match="centers"):
        make_blobs(10, centers=[])
    with pytest.raises(TypeError, match="seed"):
        make_moons(10, seed="x")
    with pytest.raises(ValueError, match="rows"):
        train_test_split([[0, 0]], [0, 1])


def test_numpy_integer_seeds_are_ints():
    np = pytest.importorskip("numpy")
    assert make_moons(20, noise=0.1, seed=np.int64(3)) == make_moons(20, noise=0.1, seed=3)
    assert make_spiral(30, seed=np.int32(2)) == make_spiral(30, seed=2)
    with pytest.raises(TypeError, match="seed must be an int"):
        make_moons(20, seed=2.5)


# -- issue 13 §3: errors that say which argument is wrong, what it was and what is expected -----

def test_blobs_center_box_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"center_box must be a pair \(low, high\).*int: 3"):
        make_blobs(10, center_box=3)
    with pytest.raises(TypeError, match="center_box must be a pair"):
        make_blobs(10, center_box=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match=r"center_box\[1\] \(high\) must be a finite number"):
        make_blobs(10, center_box=(0.0, math.inf))
    with pytest.raises(ValueError, match="low < high"):
        make_blobs(10, center_box=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"centers\[1\]\[0\] must be a finite number, got nan"):
        make_blobs(10, centers=[[0.0, 0.0], [math.nan, 1.0]])


@pytest.mark.parametrize("turns", [math.inf, math.nan, 0.0, -1.0])
def test_spiral_turns_must_be_a_finite_positive_number(turns):
    with pytest.raises(ValueError, match=r"turns \(radians per arm\) must be a finite number > 0"):
        make_spiral(30, turns=turns)


@pytest.mark.parametrize("call", [
    lambda: make_moons(10, noise=math.inf),
    lambda: make_circles(10, noise=math.nan),
    lambda: make_blobs(10, cluster_std=math.inf),
    lambda: make_circles(10, factor=math.nan),
    lambda: train_test_split([[0]] * 4, [0] * 4, test_fraction=math.nan),
], ids=["moons-noise", "circles-noise", "blobs-std", "circles-factor", "split-fraction"])
def test_non_finite_settings_are_refused(call):
    with pytest.raises(ValueError, match="must be"):
        call()


# -- issue 15 §2: the handwritten digits -------------------------------------------------------

def test_load_digits_shapes_scaling_and_split():
    pytest.importorskip("sklearn")
    from tinygrad_scalar.data import load_digits
    Xtr, Xte, ytr, yte = load_digits()
    assert len(Xtr) + len(Xte) == 1797 and len(Xte) == round(1797 * 0.25)
    assert len(ytr) == len(Xtr) and len(yte) == len(Xte)
    assert {len(x) for x in Xtr + Xte} == {64}
    flat = [v for x in Xtr + Xte for v in x]
    assert min(flat) == 0.0 and max(flat) == 1.0 and all(type(v) is float for v in flat)
    assert sorted(set(ytr + yte)) == list(range(10)) and all(type(t) is int for t in ytr)
    # the same images as scikit-learn's, pixel for pixel (order aside), scaled by 1/16
    from sklearn.datasets import load_digits as sk
    d = sk()
    ours = sorted((tuple(x), t) for x, t in zip(Xtr + Xte, ytr + yte))
    theirs = sorted((tuple(float(v) / 16.0 for v in row), int(t))
                    for row, t in zip(d.data, d.target))
    assert ours == theirs  # so every image is in exactly one half


def test_load_digits_split_is_seeded():
    pytest.importorskip("sklearn")
    from tinygrad_scalar.data import load_digits
    a, b, c = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    assert a == b
    assert a[1] != c[1]
    assert len(load_digits(test_fraction=0.1)[1]) == 180


def test_load_digits_without_sklearn_says_what_to_install(monkeypatch):
    import sys

    from tinygrad_scalar.data import load_digits
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn...` now fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"needs scikit-learn.*pip install scikit-learn.*"
                                          r"tinygrad_scalar\[digits\]"):
        load_digits()
