"""The demo: micrograd's moons setting reaches 100%, the spiral at least 95%, files are written,
and everything is deterministic with the default seed."""
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
