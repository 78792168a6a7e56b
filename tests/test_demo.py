"""The demo: micrograd's moons setting reaches 100%, the spiral at least 95%, the digits at least
95% on held-out images, files are written, and everything is deterministic with the default
seed."""
import contextlib
import io
import json
import shutil

import pytest

from tinygrad_scalar.demo import DEFAULT_SEED, run_demo, train_moons
from tinygrad_scalar.nn import MLP


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        summary = run_demo(out=str(out), quiet=True)
    return out, summary, buf.getvalue()


def test_moons_reaches_100_percent_within_100_steps(demo):
    _, s, _ = demo
    m = s["moons"]
    assert m["steps"] == 100 and m["parameters"] == 337
    assert m["steps_to_100"] is not None and m["steps_to_100"] < 100
    assert m["final_accuracy"] == 1.0


def test_spiral_reaches_95_percent(demo):
    _, s, _ = demo
    assert s["spiral"]["final_accuracy"] >= 0.95
    assert s["spiral"]["parameters"] == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3


def test_files_are_written(demo):
    out, s, text = demo
    names = {"moons_boundary.png", "spiral_boundary.png", "moons_loss.png", "spiral_loss.png",
             "moons_model.json", "spiral_model.json"}
    if s["digits"].get("skipped") is None:
        names |= {"digits_predictions.png", "digits_confusion.png"}
    files = {p.name for p in out.iterdir()}
    assert names <= files
    for n in names:
        if n.endswith(".png"):
            assert (out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = MLP.load(out / "moons_model.json")
    assert model.num_parameters() == 337
    if shutil.which("dot"):
        svg = (out / "neuron.svg").read_text(encoding="utf-8")
        assert "<svg" in svg and "w0" in svg and "tanh" in svg
    else:
        assert "neuron.gv" in files and "note" in s["neuron"]
    assert json.loads((out / "spiral_model.json").read_text())["architecture"]["args"]["nouts"] \
        == [16, 16, 3]
    assert "moons" in text and "spiral" in text and "100.0%" in text


def test_neuron_is_the_lecture_neuron(demo):
    _, s, _ = demo
    n = s["neuron"]
    assert n["output"] == pytest.approx(2 ** -0.5, rel=1e-12)  # tanh(0.8814) = 1/sqrt(2)
    assert n["grads"] == pytest.approx({"w0": 1.0, "w1": 0.0, "b": 0.5}, rel=1e-12)


def test_deterministic_with_the_default_seed():
    a = train_moons(DEFAULT_SEED, steps=8, quiet=True)
    b = train_moons(DEFAULT_SEED, steps=8, quiet=True)
    assert a[3].loss == b[3].loss and a[0].state_dict() == b[0].state_dict()
    c = train_moons(DEFAULT_SEED + 1, steps=8, quiet=True)
    assert c[3].loss != a[3].loss


def test_bad_steps():
    with pytest.raises(ValueError, match="steps"):
        run_demo(steps=0)


def test_loss_pictures_say_which_loss_they_show(monkeypatch, tmp_path):
    # the moons curve is hinge + L2 (it ends near 0.012 while the printed hinge loss is
    # 0.0002): the title must say so
    from tinygrad_scalar import demo as demo_module
    from tinygrad_scalar import plot
    titles = []
    monkeypatch.setattr(plot, "plot_loss", lambda hist, path=None, title="": titles.append(title))
    monkeypatch.setattr(plot, "plot_decision_boundary", lambda *a, **k: None)
    moons = train_moons(DEFAULT_SEED, steps=2, quiet=True)
    demo_module._write_pictures(str(tmp_path), moons, moons)
    assert "hinge + L2" in titles[0] and "cross-entropy" in titles[1]


# -- issue 15 §2: the digits -------------------------------------------------------------------

def test_digits_reach_95_percent_on_held_out_images(demo):
    pytest.importorskip("sklearn")
    _, s, text = demo
    d = s["digits"]
    assert d["test_size"] == 449 and d["train_size"] == 1348
    assert d["test_accuracy"] >= 0.95
    assert f"test accuracy {d['test_accuracy']:.1%} on 449 held-out images" in text


def test_digits_training_is_deterministic_for_a_seed():
    pytest.importorskip("sklearn")
    from tinygrad_scalar.demo import train_digits
    a = train_digits(DEFAULT_SEED, quiet=True, epochs=1)
    b = train_digits(DEFAULT_SEED, quiet=True, epochs=1)
    assert a["history"].loss == b["history"].loss
    assert a["model"].state_dict() == b["model"].state_dict()
    assert a["predictions"] == b["predictions"] and a["accuracy"] == b["accuracy"]
    c = train_digits(DEFAULT_SEED + 1, quiet=True, epochs=1)
    assert c["history"].loss != a["history"].loss
    # the predictions are the model's own (the engine's argmax on the first test images)
    from tinygrad_scalar.engine import no_grad
    with no_grad():
        for x, p in list(zip(a["X_test"], a["predictions"]))[:5]:
            out = [v.data for v in a["model"](x)]
            assert max(range(10), key=out.__getitem__) == p


def test_demo_without_sklearn_skips_the_digits_and_says_what_to_install(monkeypatch, tmp_path):
    import sys

    from tinygrad_scalar import demo as demo_module
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setitem(demo_module.SPIRAL, "epochs", 1)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        s = run_demo(out=str(tmp_path), steps=1, quiet=True)
    assert "pip install scikit-learn" in s["digits"]["skipped"]
    assert "digits: skipped: load_digits needs scikit-learn" in buf.getvalue()
    assert not (tmp_path / "digits_confusion.png").exists()


# -- issue 12 §5: the printed moons loss is the number the loss plot ends at -----------------------

def test_printed_moons_losses_match_the_plot_and_are_labelled(monkeypatch, tmp_path):
    from tinygrad_scalar import demo as demo_module
    from tinygrad_scalar import plot
    real = plot.plot_loss
    ends = {}

    def recording(hist, path=None, title=""):
        fig = real(hist, path=path, title=title)
        ends[title.split(":")[0]] = fig.axes[0].lines[0].get_ydata()[-1]
        return fig

    monkeypatch.setattr(plot, "plot_loss", recording)
    monkeypatch.setitem(demo_module.SPIRAL, "epochs", 1)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        s = run_demo(out=str(tmp_path), steps=5, quiet=True, digits=False)
    text, m = buf.getvalue(), s["moons"]
    assert m["last_step_loss"] == ends["moons"]
    assert f"hinge + L2 {ends['moons']:.4f} at the last step (where moons_loss.png ends)" in text
    # after training: the data loss and data + L2, from the saved model, independently
    from tinygrad_scalar.losses import hinge
    model = MLP.load(tmp_path / "moons_model.json")
    X, y = demo_module.make_moons(100, noise=0.1, seed=DEFAULT_SEED)
    y = demo_module.signed_labels(y)
    data = hinge([model(x) for x in X], y).data
    l2 = 1e-4 * sum(p.data ** 2 for p in model.parameters())
    assert m["final_loss"] == pytest.approx(data, rel=1e-12)
    assert m["final_loss_l2"] == pytest.approx(data + l2, rel=1e-12)
    assert f"after training hinge {data:.4f}, hinge + L2 {data + l2:.4f}" in text
    assert "digits: left out" in text
