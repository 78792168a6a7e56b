"""Training: one step, fit over minibatches, pluggable step functions, progress bars, plots."""
import io
import math

import numpy as np
import pytest

from tinygrad_scalar import losses, optim
from tinygrad_scalar.data import make_blobs, make_moons, make_spiral, signed_labels
from tinygrad_scalar.engine import Value, no_grad
from tinygrad_scalar.nn import MLP, Layer, Neuron
from tinygrad_scalar.plot import plot_decision_boundary, plot_loss, predict_grid
from tinygrad_scalar.train import (History, TrainStep, accuracy, evaluate, fit, moons_step,
                                   progress)


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(40, noise=0.1, seed=0)
    return X, signed_labels(y)


def test_moons_step_is_micrograd_step_and_equals_train_step(moons):
    X, y = moons
    a, b = MLP(2, [8, 8, 1], seed=1), MLP(2, [8, 8, 1], seed=1)
    opt = optim.SGD(b.parameters(), lr=0.5)
    step = TrainStep(b, "hinge", opt, alpha=1e-4)
    for _ in range(3):
        la, acc_a = moons_step(a, X, y, 0.5, alpha=1e-4)
        lb, acc_b = step(X, y)
        assert la == lb and acc_a == acc_b
    assert a.state_dict() == b.state_dict()
    # and both are the hand-written sequence
    c = MLP(2, [8, 8, 1], seed=1)
    for _ in range(3):
        scores = [c(x) for x in X]
        total = losses.hinge(scores, y) + losses.l2(c.parameters(), 1e-4)
        c.zero_grad()
        total.backward()
        for p in c.parameters():
            p.data -= 0.5 * p.grad
    assert c.state_dict() == a.state_dict()


def test_fit_full_batch_history(moons):
    X, y = moons
    m = MLP(2, [8, 8, 1], seed=2)
    opt = optim.SGD(m.parameters(), lr=lambda k: 1.0 - 0.9 * k / 30)
    h = fit(m, X, y, "hinge", opt, epochs=30, alpha=1e-4, quiet=True)
    assert isinstance(h, History) and h.steps == 30 == len(h.accuracy) == len(h.epoch_loss)
    assert h.lr == pytest.approx([1.0 - 0.9 * k / 30 for k in range(30)])
    assert h.loss[-1] < h.loss[0] / 3
    assert h.epoch_loss == pytest.approx(h.loss, rel=1e-15)  # one step per epoch
    k = h.steps_to(0.9)
    assert k is not None and all(a < 0.9 for a in h.accuracy[:k]) and h.accuracy[k] >= 0.9
    assert h.steps_to(1.01) is None
    loss, acc = evaluate(m, X, y, "hinge")
    assert acc >= 0.9 and loss < h.loss[0]
    assert set(h.as_dict()) >= {"loss", "accuracy", "lr", "epoch_loss", "epoch_accuracy"}


def test_fit_minibatches_count_and_shuffle_with_seed():
    X, y = make_blobs(50, centers=[[-2, 0], [2, 0]], cluster_std=0.5, seed=1)
    seen = []

    def step_fn(Xb, yb):
        seen.append([tuple(x) for x in Xb])
        return 1.0, 0.5

    h = fit(None, X, y, step_fn=step_fn, epochs=3, batch_size=16, seed=0, quiet=True)
    assert h.steps == 3 * 4 and [len(b) for b in seen[:4]] == [16, 16, 16, 2]
    first_epoch = sorted(p for b in seen[:4] for p in b)
    assert first_epoch == sorted(map(tuple, X))  # every sample once per epoch
    assert seen[:4] != seen[4:8]  # reshuffled
    again = []
    fit(None, X, y, step_fn=lambda Xb, yb: again.append([tuple(x) for x in Xb]) or (1.0, 0.5),
        epochs=3, batch_size=16, seed=0, quiet=True)
    assert again == seen  # the seed fixes the order
    assert h.epoch_loss == [1.0] * 3 and h.epoch_accuracy == [0.5] * 3


def test_pluggable_step_function_drives_the_same_loop(moons):
    X, y = moons
    m = MLP(2, [6, 1], seed=3)
    opt = optim.SGD(m.parameters(), lr=0.3)
    engine_step = TrainStep(m, "hinge", opt)
    calls = []

    def my_step(Xb, yb):  # e.g. a compiled replay would go here
        calls.append(len(Xb))
        return engine_step(Xb, yb)

    ref = MLP(2, [6, 1], seed=3)
    h_ref = fit(ref, X, y, "hinge", optim.SGD(ref.parameters(), lr=0.3), epochs=5,
                batch_size=10, seed=4, quiet=True)
    h = fit(m, X, y, step_fn=my_step, epochs=5, batch_size=10, seed=4, quiet=True)
    assert calls == [10] * 20 and h.loss == h_ref.loss and m.state_dict() == ref.state_dict()


def test_callback_can_stop_training(moons):
    X, y = moons
    m = MLP(2, [8, 1], seed=0)
    h = fit(m, X, y, "hinge", optim.SGD(m.parameters(), lr=0.1), epochs=50, quiet=True,
            callback=lambda hist: hist.steps == 7)
    assert h.steps == 7 and len(h.epoch_loss) == 7
    h = fit(m, X, y, "hinge", optim.SGD(m.parameters(), lr=0.1), epochs=50, quiet=True,
            batch_size=16, callback=lambda hist: hist.steps == 5)  # mid-epoch (3 per epoch)
    assert h.steps == 5 and len(h.epoch_loss) == 1


def test_fit_with_other_losses():
    X, y = make_blobs(40, centers=[[-2, 0], [2, 0]], cluster_std=0.4, seed=2)
    m = MLP(2, [4, 1], seed=0)
    h = fit(m, X, y, "bce", optim.Adam(m.parameters(), lr=0.05), epochs=30, quiet=True)
    assert evaluate(m, X, y, "bce")[1] == 1.0 and h.loss[-1] < h.loss[0]
    m = MLP(2, [4, 1], seed=0)
    h = fit(m, X, [float(t) for t in y], "mse", optim.SGD(m.parameters(), lr=0.05),
            epochs=20, quiet=True)
    assert h.accuracy == [None] * 20 and h.epoch_accuracy == [None] * 20
    assert h.loss[-1] < h.loss[0]
    custom = lambda out, t: losses.mse(out, t, reduction="sum")  # noqa: E731
    h = fit(m, X, [float(t) for t in y], custom, optim.SGD(m.parameters(), lr=0.001),
            epochs=2, quiet=True, accuracy=lambda out, t: 0.25)
    assert h.accuracy == [0.25, 0.25]


def test_mlp_with_a_hidden_layer_of_width_one_trains(moons):
    X, y = make_moons(60, noise=0.1, seed=1)
    y = signed_labels(y)
    m = MLP(2, [16, 1, 1], seed=1)
    before = m.state_dict()
    h = fit(m, X, y, "hinge", optim.SGD(m.parameters(), lr=0.1), epochs=40, quiet=True)
    assert h.loss[-1] < 0.6 * h.loss[0]
    assert evaluate(m, X, y)[1] >= 0.8
    moved = [k for k in before if m.state_dict()[k] != before[k]]
    assert any(k.startswith("L0.") for k in moved)  # gradients pass the bottleneck


def test_accuracy_functions():
    assert accuracy([Value(0.5), Value(-0.1), Value(2.0)], [1, 1, -1], "hinge") == 1 / 3
    assert accuracy([0.5, -0.1], [1, 0], "bce") == 1.0
    assert accuracy([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0]], [1, 2], "cross_entropy") == 0.5
    assert accuracy([1.0], [1.0], "mse") is None
    with pytest.raises(ValueError, match="loss must be one of"):
        accuracy([1.0], [1], "nll")


def test_fit_bad_arguments(moons):
    X, y = moons
    m = MLP(2, [4, 1], seed=0)
    opt = optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="X has 40 rows but y has 39 targets"):
        fit(m, X, y[:-1], "hinge", opt)
    with pytest.raises(TypeError, match="needs an optimizer"):
        fit(m, X, y, "hinge")
    with pytest.raises(ValueError, match="batch_size"):
        fit(m, X, y, "hinge", opt, batch_size=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        fit(m, X, y, "nll", opt)
    with pytest.raises(ValueError, match="alpha"):
        fit(m, X, y, "hinge", opt, alpha=-1.0)
    with pytest.raises(TypeError, match="optimizer must be"):
        fit(m, X, y, "hinge", "sgd")
    with pytest.raises(ValueError, match="labels must be -1 or \\+1"):
        fit(m, X, [(t + 1) // 2 for t in y], "hinge", opt, quiet=True)
    with pytest.raises(FloatingPointError, match="loss became nan"):
        fit(m, X, y, step_fn=lambda a, b: (math.nan, None), quiet=True)


def test_progress_bar_is_quiet_off_a_terminal():
    buf = io.StringIO()
    bar = progress(10, "x", file=buf)
    assert bar.disable
    bar.close()

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    bar = progress(3, "moons", file=tty)
    assert not bar.disable
    bar.update(3)
    bar.close()
    assert "moons" in tty.getvalue() and "3/3" in tty.getvalue()
    bar = progress(3, "moons", quiet=True, file=Tty())
    assert bar.disable
    bar.close()
    # fit on a terminal draws the bar with loss and accuracy
    X, y = make_moons(10, seed=0)
    tty = Tty()
    m = MLP(2, [3, 1], seed=0)
    fit(m, X, signed_labels(y), "hinge", optim.SGD(m.parameters(), lr=0.1), epochs=2,
        file=tty, desc="demo")
    assert "demo" in tty.getvalue() and "loss=" in tty.getvalue()


# ---------------------------------------------------------------------------------------------
# Plots


@pytest.mark.parametrize("model", [MLP(2, [5, 4, 3], activation="tanh", seed=0),
                                   MLP(2, [6, 1], activation="sigmoid", seed=1),
                                   Layer(2, 3, "relu", seed=2), Neuron(2, "sigmoid", seed=3)])
def test_predict_grid_equals_the_engine(model):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-3, 3, size=(25, 2))
    fast = predict_grid(model, pts)
    with no_grad():
        slow = []
        for p in pts:
            out = model(list(p))
            slow.append([o.data for o in (out if isinstance(out, list) else [out])])
    assert fast.shape == (25, len(slow[0]))
    np.testing.assert_allclose(fast, np.array(slow), rtol=1e-12, atol=1e-14)
    generic = predict_grid(lambda x: model(x), pts[:5])  # any callable: the engine path
    np.testing.assert_allclose(generic, np.array(slow[:5]), rtol=0, atol=0)


def test_plots_write_png(tmp_path):
    X, y = make_spiral(30, 3, seed=0)
    m = MLP(2, [8, 3], seed=0)
    h = fit(m, X, y, "cross_entropy", optim.Adam(m.parameters(), lr=0.05), epochs=3,
            quiet=True)
    fig = plot_decision_boundary(m, X, y, path=tmp_path / "b.png", resolution=30)
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes and fig.axes[0].get_title() == "decision boundary"
    plot_loss(h, path=tmp_path / "sub" / "l.png")
    assert (tmp_path / "sub" / "l.png").read_bytes()[:4] == b"\x89PNG"
    plot_loss({"loss": [1.0, 0.5, 0.0]})  # a plain dict works, zero loss: linear scale
    Xm, ym = make_moons(20, seed=0)
    bm = MLP(2, [4, 1], seed=0)
    plot_decision_boundary(bm, Xm, signed_labels(ym), resolution=20)
    with pytest.raises(ValueError, match="N x 2"):
        plot_decision_boundary(m, [[1.0, 2.0, 3.0]], [0])
    with pytest.raises(ValueError, match="no steps"):
        plot_loss(History())


def test_fit_compiled_matches_the_engine():
    pytest.importorskip("tinygrad_scalar.static_train", reason="the compiled path is optional")
    X, y = make_moons(30, noise=0.1, seed=2)
    y = signed_labels(y)
    a, b = MLP(2, [6, 6, 1], seed=4), MLP(2, [6, 6, 1], seed=4)
    ha = fit(a, X, y, "hinge", optim.SGD(a.parameters(), lr=0.2), epochs=4, batch_size=10,
             alpha=1e-4, seed=1, quiet=True)
    hb = fit(b, X, y, "hinge", optim.SGD(b.parameters(), lr=0.2), epochs=4, batch_size=10,
             alpha=1e-4, seed=1, quiet=True, compiled=True)
    assert hb.loss == pytest.approx(ha.loss, rel=1e-9) and hb.accuracy == ha.accuracy
    for k, v in a.state_dict().items():
        assert b.state_dict()[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
    with pytest.raises(TypeError, match="not both"):
        fit(a, X, y, step_fn=lambda X, y: (0.0, None), compiled=True)


def test_plot_figures_show_themselves_in_jupyter_as_png():
    from tinygrad_scalar.plot import plot_loss

    class H:  # the smallest history plot_loss reads
        loss = [1.0, 0.5, 0.25]
        accuracy = [0.5, 0.75, 1.0]
    fig = plot_loss(H())
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def _scatter_colors(fig):
    from matplotlib.collections import PathCollection
    from matplotlib.colors import to_hex
    sc = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)][-1]
    return [to_hex(c) for c in sc.get_facecolors()]


def test_decision_boundary_points_have_their_regions_colour_when_a_class_is_missing():
    from tinygrad_scalar.plot import _COLORS, _label_indices
    m = MLP(2, [4, 3], seed=0)
    X = [[0.0, 0.1], [1.0, -1.0], [0.5, 0.5]]
    # class 1 is absent: class 2 must keep class 2's colour (the colour of its region)
    fig = plot_decision_boundary(m, X, [0, 2, 2], resolution=10)
    assert _scatter_colors(fig) == [_COLORS[0], _COLORS[2], _COLORS[2]]
    # one output, only the positive class shown: red (the positive region), whatever the labels
    b = MLP(2, [4, 1], seed=0)
    assert _scatter_colors(plot_decision_boundary(b, X, [1, 1, 1], resolution=10)) == \
        [_COLORS[1]] * 3
    assert _scatter_colors(plot_decision_boundary(b, X, [-1, -1, 1], resolution=10)) == \
        [_COLORS[0], _COLORS[0], _COLORS[1]]
    assert _label_indices([0, 1, 1], 1) == [0, 1, 1] == _label_indices([-1, 1, 1], 1)
    assert _label_indices(np.array([2.0, 0.0]), 3) == [2, 0]
    assert _label_indices(["b", "a"], 2) == [1, 0]  # other labels: their rank


def test_a_sigmoid_output_is_split_at_one_half():
    from tinygrad_scalar.plot import _regions
    n = Neuron(2, "sigmoid", seed=0)
    n.load_state_dict({"w0": 1.0, "w1": 0.0, "b": 0.0})
    pts = np.array([[-2.0, 0.0], [-0.1, 0.0], [0.1, 0.0], [3.0, 0.0]])
    pred, score = _regions(n, predict_grid(n, pts))
    assert pred.tolist() == [0, 0, 1, 1]  # the sign of the score alone would say all 1
    assert np.all(np.sign(score) == [-1, -1, 1, 1])
    lin = MLP(2, [1], seed=0)
    lin.load_state_dict({"L0.N0.w0": 1.0, "L0.N0.w1": 0.0, "L0.N0.b": 0.0})
    assert _regions(lin, predict_grid(lin, pts))[0].tolist() == [0, 0, 1, 1]


def test_loss_plot_counts_steps_in_whole_numbers():
    fig = plot_loss({"loss": [1.0, 0.5, 0.3]})
    ticks = [t for t in fig.axes[0].get_xticks() if 0 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_fit_takes_numpy_integer_seeds_and_rejects_other_seeds():
    X, y = make_moons(20, noise=0.1, seed=0)
    runs = []
    for seed in (np.int64(4), 4):
        m = MLP(2, [4, 1], seed=0)
        h = fit(m, X, y, "bce", optim.SGD(m.parameters(), lr=0.1), epochs=2, batch_size=7,
                seed=seed, quiet=True)
        runs.append(h.loss)
    assert runs[0] == runs[1]
    m = MLP(2, [4, 1], seed=0)
    with pytest.raises(TypeError, match="seed must be an int or a random.Random, got str"):
        fit(m, X, y, "bce", optim.SGD(m.parameters(), lr=0.1), epochs=1, seed="abc",
            quiet=True)


def test_progress_bar_shows_in_jupyter():
    # a Jupyter kernel's stderr reports isatty() == False, but the bar shows there live
    class OutStream(io.StringIO):
        def isatty(self):
            return False
    OutStream.__module__ = "ipykernel.iostream"
    stream = OutStream()
    bar = progress(3, "spiral", file=stream)
    assert not bar.disable
    bar.update(3)
    bar.close()
    assert "spiral" in stream.getvalue()
    assert progress(3, "spiral", quiet=True, file=OutStream()).disable


# -- issue 13 §3: moons_step checks lr as the optimizers do, and a failed step changes nothing ---

@pytest.mark.parametrize("bad, err", [(1 + 0j, TypeError), (np.array(0.5), TypeError),
                                      (np.array([0.5, 0.5]), TypeError), ("0.5", TypeError),
                                      (math.inf, ValueError), (math.nan, ValueError),
                                      (-0.1, ValueError)])
def test_moons_step_refuses_a_bad_lr_and_changes_nothing(moons, bad, err):
    X, y = moons
    m = MLP(2, [4, 1], seed=0)
    before = m.state_dict()
    with pytest.raises(err, match="lr must be"):
        moons_step(m, X, y, bad)
    assert m.state_dict() == before
    assert all(type(p.data) is float for p in m.parameters())


def test_moons_step_refuses_a_torch_lr(moons):
    torch = pytest.importorskip("torch")
    X, y = moons
    m = MLP(2, [4, 1], seed=0)
    before = m.state_dict()
    with pytest.raises(TypeError, match="lr must be a real number.*Tensor"):
        moons_step(m, X, y, torch.tensor(0.5))
    assert m.state_dict() == before


@pytest.mark.parametrize("alpha", [math.inf, math.nan, -1.0, 1j])
def test_moons_step_refuses_a_bad_alpha(moons, alpha):
    X, y = moons
    m = MLP(2, [4, 1], seed=0)
    with pytest.raises((TypeError, ValueError), match="alpha"):
        moons_step(m, X, y, 0.1, alpha=alpha)


def test_moons_step_that_would_overflow_changes_nothing(moons):
    X, y = moons
    m = MLP(2, [4, 1], seed=0)
    m.parameters()[-1].data = 1e150  # the output bias: its L2 gradient is 2e150
    before = m.state_dict()
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        moons_step(m, X, y, 1e300, alpha=1.0)
    assert m.state_dict() == before


# -- issue 12 §1: an optimizer over another model's parameters is refused ------------------------

@pytest.mark.parametrize("compiled", [False, True])
def test_fit_refuses_an_optimizer_over_another_models_parameters(moons, compiled):
    X, y = moons
    model, other = MLP(2, [4, 1], seed=0), MLP(2, [4, 1], seed=0)
    opt = optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not the model's.*another model's parameters"):
        fit(model, X, y, "hinge", opt, epochs=2, quiet=True, compiled=compiled)
    with pytest.raises(ValueError, match="another model's parameters"):
        TrainStep(model, "hinge", opt)
    # a subset (a frozen layer) is fine, and trains only that subset
    first = model.layers[0].parameters()
    before_last = model.layers[1].state_dict()
    fit(model, X, y, "hinge", optim.SGD(first, lr=0.1), epochs=2, quiet=True,
        compiled=compiled)
    assert model.layers[1].state_dict() == before_last


# -- issue 13 §3: plot_loss says what is wrong with what it was given ---------------------------

@pytest.mark.parametrize("bad, err, msg", [
    ("x", TypeError, "plot_loss needs the History that fit returns.*str"),
    (None, TypeError, "plot_loss needs the History"),
    ({}, ValueError, r"needs a 'loss' list.*got keys \[\]"),
    ({"acc": [1.0]}, ValueError, r"got keys \['acc'\]"),
    ({"loss": "abc"}, TypeError, "'loss' must be a list of numbers"),
    ({"loss": [1.0, "x"]}, TypeError, r"loss\[1\] must be a number"),
    ({"loss": [1.0, 0.5], "accuracy": [0.5]}, ValueError, "'accuracy' must be a list as long"),
])
def test_plot_loss_errors_say_what_is_wrong(bad, err, msg):
    with pytest.raises(err, match=msg):
        plot_loss(bad)


def test_plot_loss_takes_numpy_arrays(tmp_path):
    fig = plot_loss({"loss": np.array([1.0, 0.5, 0.25]), "accuracy": np.array([0.1, 0.5, 1.0])})
    assert len(fig.axes) == 2


# -- issue 12 §5: History's repr is a summary ---------------------------------------------------

def test_history_repr_is_a_short_summary():
    h = History(loss=[1.0 / (k + 1) for k in range(5000)], accuracy=[0.5] * 4999 + [0.98],
                lr=[0.1] * 5000, epoch_loss=[0.5] * 50, epoch_accuracy=[0.9] * 50, seconds=3.25)
    text = repr(h)
    assert len(text) < 120, text
    assert "5000 steps" in text and "50 epochs" in text and "loss 1 -> 0.0002" in text
    assert "98.0%" in text and "3.25 s" in text
    assert repr(History()) == "History(0 steps)"
    assert History(loss=[0.5], accuracy=[None]).__repr__().count("accuracy") == 0


# -- issue 12 §5: saved pictures have no wide white bands ---------------------------------------

def _white_bands(path):
    from PIL import Image
    a = np.asarray(Image.open(path).convert("L"))
    rows = (a >= 250).all(axis=1)
    cols = (a >= 250).all(axis=0)
    return (int(np.argmax(~rows)) / len(a), int(np.argmax(~rows[::-1])) / len(a),
            int(np.argmax(~cols)) / a.shape[1], int(np.argmax(~cols[::-1])) / a.shape[1])


@pytest.mark.parametrize("shape", ["wide", "tall"])
def test_decision_boundary_png_is_cropped_to_its_content(tmp_path, shape):
    X, y = make_moons(60, noise=0.1, seed=0)
    if shape == "tall":
        X = [[b, a] for a, b in X]
    m = MLP(2, [4, 1], seed=0)
    path = tmp_path / "b.png"
    plot_decision_boundary(m, X, signed_labels(y), path=path)
    assert max(_white_bands(path)) < 0.05, _white_bands(path)


def test_confusion_matrix_counts_and_pictures(tmp_path):
    from tinygrad_scalar.plot import confusion_matrix, plot_confusion, plot_digits
    truth = [0, 1, 2, 2, 1, 0, 2]
    pred = [0, 2, 2, 1, 1, 0, 2]
    assert confusion_matrix(truth, pred) == [[2, 0, 0], [0, 1, 1], [0, 1, 2]]
    assert confusion_matrix([1], [1], n_classes=4)[1] == [0, 1, 0, 0]
    with pytest.raises(ValueError, match="outside 0..1"):
        confusion_matrix([0, 2], [0, 0], n_classes=2)
    with pytest.raises(ValueError, match=r"y_pred\[1\] must be a class index"):
        confusion_matrix([0, 1], [0, -1])
    fig = plot_confusion(truth, pred, path=tmp_path / "c.png")
    assert "71.4% right" in fig.axes[0].get_title()
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    imgs = [[i / 16.0] * 16 for i in range(3)]  # 4x4 images
    fig = plot_digits(imgs, [0, 1, 2], [0, 2, 2], path=tmp_path / "d.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["0", "2 (is 1)", "2"]
    assert fig.axes[1].title.get_color() != fig.axes[0].title.get_color()
    with pytest.raises(ValueError, match="not a square"):
        plot_digits([[0.0] * 5], [0])
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        plot_digits(imgs, [0, 1])


def test_an_optimizer_in_the_loss_place_is_named_as_such():
    # fit(model, X, y, opt) puts the optimizer where the loss goes: say so, not "needs an
    # optimizer", and leave the model as it was
    model = MLP(2, [3, 1], seed=0)
    before = model.state_dict()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"fourth argument is the loss.*got the optimizer SGD.*"
                                        r"optimizer=opt"):
        fit(model, [[0.0, 1.0], [1.0, 0.0]], [1, -1], opt, quiet=True)
    assert model.state_dict() == before


# -- found by a review of the compiled path: a user's accuracy gets Values, before the update --

@pytest.mark.parametrize("loss, nout", [("hinge", 1), ("cross_entropy", 3)])
def test_a_users_accuracy_gets_the_same_outputs_from_the_compiled_path(loss, nout):
    X, y = make_moons(20, noise=0.1, seed=3)
    y = signed_labels(y) if loss == "hinge" else [int(t) + (i % 2) for i, t in enumerate(y)]
    seen = {}

    def acc(outputs, targets):
        rows = [o if isinstance(o, list) else [o] for o in outputs]
        seen.setdefault("kinds", set()).add((type(outputs[0]).__name__, type(rows[0][0])))
        hits = sum(max(range(len(r)), key=lambda j: r[j].data) == t if len(r) > 1
                   else (r[0].data > 0) == (t > 0) for r, t in zip(rows, targets))
        return hits / len(targets)

    hist = {}
    for comp in (False, True):
        seen.clear()
        net = MLP(2, [4, nout], seed=5)
        hist[comp] = fit(net, X, y, loss, optim.SGD(net.parameters(), lr=0.1), epochs=3,
                         quiet=True, accuracy=acc, compiled=comp).accuracy
        assert seen["kinds"] == {("Value" if nout == 1 else "list", Value)}
    assert hist[True] == hist[False]


@pytest.mark.parametrize("compiled", [False, True])
def test_an_accuracy_that_raises_applies_no_step(compiled):
    X, y = make_moons(20, noise=0.1, seed=3)
    y = signed_labels(y)

    def acc(outputs, targets):
        raise KeyError("the user's accuracy failed")

    net = MLP(2, [4, 1], seed=5)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for p in net.parameters():
        p.grad = 0.125
    before = [(p.data, p.grad) for p in net.parameters()]
    with pytest.raises(KeyError, match="accuracy failed"):
        fit(net, X, y, "hinge", opt, epochs=1, quiet=True, accuracy=acc, compiled=compiled)
    assert [(p.data, p.grad) for p in net.parameters()] == before
    assert (opt.steps, opt._buf) == (0, None)


@pytest.mark.parametrize("compiled", [False, True])
def test_an_accuracy_may_read_outputs_as_floats_on_both_paths(compiled):
    # a metric runs inside no_grad(): float(output) refused on the engine path (recording)
    # and, after outputs became Values there, on the compiled path too
    X, y = make_moons(20, noise=0.1, seed=3)
    y = signed_labels(y)

    def acc(outputs, targets):
        return sum((float(o) > 0) == (t > 0) for o, t in zip(outputs, targets)) / len(targets)

    def ref(outputs, targets):
        return sum((o.data > 0) == (t > 0) for o, t in zip(outputs, targets)) / len(targets)

    hist = {}
    for name, fn in (("float", acc), ("data", ref)):
        net = MLP(2, [4, 1], seed=5)
        hist[name] = fit(net, X, y, "hinge", optim.SGD(net.parameters(), lr=0.1), epochs=3,
                         quiet=True, accuracy=fn, compiled=compiled).accuracy
    assert hist["float"] == hist["data"] and len(hist["float"]) == 3
