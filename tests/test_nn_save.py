"""Saving and loading models: exact round trips, atomic writes, every bad file rejected with the
model untouched."""
import json
import os

import pytest

from tinygrad_scalar.nn import MLP, Layer, Module, ModelFileError, Neuron


@pytest.fixture
def model():
    return MLP(2, [4, 3, 1], activation="tanh", seed=3)


def _doc(m):
    return {"format": "tinygrad_scalar.module", "version": 1, "architecture": m.architecture(),
            "parameters": m.state_dict()}


def test_state_dict_round_trip(model):
    sd = model.state_dict()
    other = MLP(2, [4, 3, 1], activation="tanh", seed=4)
    assert other.state_dict() != sd
    other.load_state_dict(sd)
    assert other.state_dict() == sd
    sd["L0.N0.w0"] = 123.0  # a copy: changing it leaves the model alone
    assert model.state_dict()["L0.N0.w0"] != 123.0


def test_save_and_load_round_trip_exactly(model, tmp_path):
    path = tmp_path / "m.json"
    model.save(path)
    loaded = MLP.load(path)
    assert isinstance(loaded, MLP) and loaded.architecture() == model.architecture()
    assert loaded.state_dict() == model.state_dict()  # bit for bit (JSON floats round-trip)
    x = [0.123456789, -1.987654321]
    assert loaded(x).data == model(x).data
    generic = Module.load(str(path))  # the base class builds whatever the file holds
    assert isinstance(generic, MLP) and generic.state_dict() == model.state_dict()
    fresh = MLP(2, [4, 3, 1], activation="tanh", seed=99)
    assert fresh.load(path) is fresh
    assert fresh.state_dict() == model.state_dict()
    doc = json.loads(path.read_text())
    assert doc["format"] == "tinygrad_scalar.module" and doc["version"] == 1
    assert doc["architecture"] == {"class": "MLP", "args": {"nin": 2, "nouts": [4, 3, 1],
                                                            "activation": "tanh"}}
    assert list(doc["parameters"]) == [n for n, _ in model.named_parameters()]


@pytest.mark.parametrize("make", [lambda: Neuron(3, "sigmoid", seed=1),
                                  lambda: Layer(2, 3, "linear", seed=1)])
def test_neurons_and_layers_save_too(make, tmp_path):
    m = make()
    m.save(tmp_path / "x.json")
    back = type(m).load(tmp_path / "x.json")
    assert type(back) is type(m) and back.state_dict() == m.state_dict()
    assert back.architecture() == m.architecture()


def test_save_is_atomic_and_leaves_no_temp_files(model, tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    model.save(path)
    before = path.read_bytes()
    other = MLP(2, [4, 3, 1], activation="tanh", seed=5)

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["m.json"]  # and the temp file is gone
    other.save(path)
    assert MLP.load(path).state_dict() == other.state_dict()
    assert sorted(os.listdir(tmp_path)) == ["m.json"]
    mode = os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # like a file opened normally, not mkstemp's 0600


def test_save_refuses_non_finite_parameters(model, tmp_path):
    model.parameters()[0].data = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        model.save(tmp_path / "m.json")
    assert not os.listdir(tmp_path)


def _bad_files(model):
    """(name, file text, expected error) for every kind of bad file."""
    good = _doc(model)
    out = []
    out.append(("empty", "", "corrupt JSON"))
    text = json.dumps(good)
    out.append(("truncated", text[: len(text) // 2], "corrupt JSON"))
    out.append(("not json", "hello, world", "corrupt JSON"))
    out.append(("a list", "[1, 2, 3]", "format tag"))
    out.append(("no format tag", json.dumps({**good, "format": "something-else"}), "format tag"))
    out.append(("future version", json.dumps({**good, "version": 2}), "version"))
    out.append(("no architecture", json.dumps({k: v for k, v in good.items()
                                               if k != "architecture"}), "architecture"))
    out.append(("no parameters", json.dumps({k: v for k, v in good.items()
                                             if k != "parameters"}), "no parameters"))
    other = MLP(2, [4, 4, 1], activation="tanh", seed=0)
    out.append(("another architecture", json.dumps(_doc(other)), "saved for"))
    tanh_relu = MLP(2, [4, 3, 1], activation="relu", seed=0)
    out.append(("another activation", json.dumps(_doc(tanh_relu)), "saved for"))
    params = dict(good["parameters"])
    params.pop("L1.N2.b")
    out.append(("one parameter missing", json.dumps({**good, "parameters": params}),
                "has 30 parameters, this MLP has 31"))
    params = dict(good["parameters"], extra=1.0)
    out.append(("one parameter too many", json.dumps({**good, "parameters": params}),
                "has 32 parameters"))
    params = dict(good["parameters"])
    params["L9.N0.w0"] = params.pop("L1.N2.b")
    out.append(("a wrong name", json.dumps({**good, "parameters": params}), "missing"))
    for bad, what in (("0.5", "must be a number"), (None, "must be a number"),
                      (True, "must be a number"), ([1.0], "must be a number")):
        params = dict(good["parameters"], **{"L1.N1.w2": bad})
        out.append((f"non-number {bad!r}", json.dumps({**good, "parameters": params}), what))
    out.append(("NaN literal", text.replace('"L2.N0.b": 0.0', '"L2.N0.b": NaN'),
                "not a number"))
    out.append(("Infinity literal", text.replace('"L2.N0.b": 0.0', '"L2.N0.b": Infinity'),
                "not a number"))
    out.append(("huge number", text.replace('"L2.N0.b": 0.0', '"L2.N0.b": 1e999'), "finite"))
    out.append(("parameters not a mapping", json.dumps({**good, "parameters": [1.0, 2.0]}),
                "mapping"))
    dup = text.replace('"L2.N0.b": 0.0', '"L2.N0.b": 0.0, "L2.N0.b": 1.0')
    out.append(("duplicate key", dup, "twice"))
    return out


def test_every_bad_file_is_rejected_and_the_model_is_untouched(model, tmp_path):
    before = model.state_dict()
    assert '"L2.N0.b": 0.0' in json.dumps(_doc(model))  # the replacements above apply
    cases = _bad_files(model)
    for name, text, expected in cases:
        path = tmp_path / "bad.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ModelFileError, match=expected):
            model.load(path)
        assert model.state_dict() == before, name
        if name not in ("another architecture", "another activation"):
            with pytest.raises(ModelFileError):
                MLP.load(path)
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelFileError, match="corrupt"):
        model.load(path)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        model.load(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError):
        MLP.load(tmp_path / "missing.json")
    assert model.state_dict() == before
    assert issubclass(ModelFileError, ValueError)


def test_class_level_load_checks_the_class(tmp_path):
    Neuron(2, seed=0).save(tmp_path / "n.json")
    with pytest.raises(ModelFileError, match="holds a Neuron, not a MLP"):
        MLP.load(tmp_path / "n.json")
    doc = _doc(Neuron(2, seed=0))
    doc["architecture"]["class"] = "Transformer"
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="unknown model class 'Transformer'"):
        Module.load(tmp_path / "t.json")
    doc = _doc(Neuron(2, seed=0))
    doc["architecture"]["args"]["activation"] = "gelu"
    (tmp_path / "g.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="bad architecture"):
        Neuron.load(tmp_path / "g.json")


def test_load_state_dict_validates_before_touching_anything(model):
    before = model.state_dict()
    bad = dict(before)
    bad["L0.N0.w0"] = 2.0  # a valid change...
    bad["L2.N0.b"] = "zero"  # ...and a bad one later: nothing may change
    with pytest.raises(ModelFileError, match="L2.N0.b"):
        model.load_state_dict(bad)
    assert model.state_dict() == before
    for bad in ([1.0] * 31, {}, {**before, "L0.N0.w0": float("inf")},
                {**before, "L0.N0.w0": float("nan")}):
        with pytest.raises(ModelFileError):
            model.load_state_dict(bad)
        assert model.state_dict() == before
    import numpy as np
    model.load_state_dict({k: np.float64(v) for k, v in before.items()})
    assert model.state_dict() == before
