"""Saving and loading models: exact round trips, atomic writes, every bad file rejected with the
model untouched."""
import json
import os

import pytest

from tinygrad_scalar.engine import Value
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


@pytest.mark.parametrize("make", [lambda: Layer(2, 3, "tanh", seed=1, name="enc"),
                                  lambda: Neuron(2, "sigmoid", seed=1, name="L0.N1"),
                                  lambda: MLP(2, [3, 1], seed=0).layers[1]])
def test_named_layers_and_neurons_round_trip(make, tmp_path):
    # the name prefixes every parameter name, so the file carries it and load rebuilds it
    m = make()
    m.save(tmp_path / "x.json")
    back = type(m).load(tmp_path / "x.json")
    assert back.name == m.name and back.state_dict() == m.state_dict()
    assert back.architecture() == m.architecture()
    x = [0.3, -0.7, 1.1][:m.nin]
    out = lambda model: [v.data for v in (lambda o: o if isinstance(o, list) else [o])(model(x))]
    assert out(back) == out(m)
    fresh = make()
    fresh.load(tmp_path / "x.json")  # into a model of the same name
    assert fresh.state_dict() == m.state_dict()
    other = type(m)(*([m.nin, m.nout] if isinstance(m, Layer) else [m.nin]), m.activation,
                    seed=9, name=m.name + "x")
    before = other.state_dict()
    with pytest.raises(ModelFileError, match="saved for"):
        other.load(tmp_path / "x.json")
    assert other.state_dict() == before


def _write(path, doc_or_text):
    path.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return path


def _untouched_after(model, path, match):
    before = model.state_dict()
    with pytest.raises(ModelFileError, match=match):
        model.load(path)
    assert model.state_dict() == before
    with pytest.raises(ModelFileError, match=match):
        type(model).load(path)


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_the_version_must_be_the_integer_one(model, tmp_path, version):
    doc = _doc(model)
    doc["version"] = version
    _untouched_after(MLP(2, [4, 3, 1], activation="tanh", seed=8),
                     _write(tmp_path / "v.json", doc), "format version")


@pytest.mark.parametrize("extra", [{"seed": 3}, {"rng": 3}])
def test_unknown_architecture_arguments_are_rejected(model, tmp_path, extra):
    doc = _doc(model)
    doc["architecture"]["args"].update(extra)
    _untouched_after(MLP(2, [4, 3, 1], activation="tanh", seed=8),
                     _write(tmp_path / "a.json", doc), "architecture")


def test_a_huge_architecture_is_rejected_before_it_is_built(model, tmp_path):
    # 10^16 parameters would never finish allocating: the count is checked first
    doc = _doc(model)
    doc["architecture"]["args"]["nouts"] = [10 ** 8, 10 ** 8, 1]
    with pytest.raises(ModelFileError, match="has 31 parameters, the architecture"):
        MLP.load(_write(tmp_path / "h.json", doc))
    doc["parameters"] = list(doc["parameters"].values())  # not a mapping: also before building
    with pytest.raises(ModelFileError, match="must be a mapping"):
        MLP.load(_write(tmp_path / "h.json", doc))


def test_deeply_nested_json_and_huge_integers_are_model_file_errors(model, tmp_path):
    target = MLP(2, [4, 3, 1], activation="tanh", seed=8)
    _untouched_after(target, _write(tmp_path / "d.json", "[" * 30000 + "]" * 30000),
                     "nested too deeply")
    doc = _doc(model)
    doc["parameters"]["L0.N0.w0"] = 10 ** 400
    _untouched_after(target, _write(tmp_path / "i.json", doc), "too large for a float")


def test_saving_into_a_missing_folder_names_the_folder(model, tmp_path):
    path = tmp_path / "no" / "such" / "m.json"
    with pytest.raises(FileNotFoundError, match=r"cannot write .*m\.json.*the folder .*such.* "
                                                 r"does not exist") as err:
        model.save(path)
    assert ".tmp-" not in str(err.value)
    assert not (tmp_path / "no").exists()


def _users_own_mlp_class():
    class MLP(Module):  # a student's own class, micrograd's spelling
        def __init__(self, width=2):
            self.width = width
            self.w = [Value(0.5 * i, f"w{i}") for i in range(width)]

        def named_parameters(self):
            for i, w in enumerate(self.w):
                yield f"w{i}", w

        def _config(self):
            return {"width": self.width}
    return MLP


def test_a_users_own_module_named_mlp_does_not_hijack_loading(model, tmp_path):
    model.save(tmp_path / "m.json")
    UserMLP = _users_own_mlp_class()
    assert UserMLP.__name__ == "MLP" and UserMLP is not MLP
    try:
        loaded = MLP.load(tmp_path / "m.json")
        assert type(loaded) is MLP and loaded.state_dict() == model.state_dict()
        assert type(Module.load(tmp_path / "m.json")) is MLP
        mine = UserMLP(3)
        mine.save(tmp_path / "mine.json")  # the user's class round-trips under its own key
        back = Module.load(tmp_path / "mine.json")
        assert type(back) is UserMLP and back.state_dict() == mine.state_dict()
        with pytest.raises(ModelFileError, match="not a MLP"):
            MLP.load(tmp_path / "mine.json")
    finally:
        Module._registry.pop(UserMLP._registry_key, None)


def test_subclasses_register_under_their_full_name():
    class Tiny(Module):
        def __init__(self, act=print):  # a function is no JSON value: cannot be recorded
            self.act = act
    assert Tiny._registry_key == f"{__name__}.test_subclasses_register_under_their_full_name." \
                                 f"<locals>.Tiny"
    assert Module._registry[Tiny._registry_key] is Tiny
    assert MLP._registry_key == "MLP" and Module._registry["MLP"] is MLP
    with pytest.raises(NotImplementedError, match="Tiny cannot be saved: constructor "
                                                  "argument.* act are not JSON.* implements "
                                                  "_config"):
        Tiny().save("unused.json")
    assert not os.path.exists("unused.json")


# -- issue 13 §2: every bad file is a ModelFileError naming it; one rule; bounded reads ----------

def test_an_integer_of_more_than_4300_digits_is_a_model_file_error(model, tmp_path):
    target = MLP(2, [4, 3, 1], activation="tanh", seed=8)
    text = json.dumps(_doc(model))
    for where in ('"L2.N0.b": 0.0', '"nin": 2'):  # a parameter, or the architecture
        key = where.split(":")[0]
        bad = _write(tmp_path / "big.json", text.replace(where, f"{key}: {'7' * 5000}"))
        with pytest.raises(ModelFileError, match=r"big\.json.*integer of 5000 digits"):
            target.load(bad)
        with pytest.raises(ModelFileError, match=r"big\.json.*integer of 5000 digits"):
            MLP.load(bad)
    assert target.state_dict() == MLP(2, [4, 3, 1], activation="tanh", seed=8).state_dict()


@pytest.mark.parametrize("field,value", [("nin", 2.0), ("nouts", [4, 3.0, 1])])
def test_one_rule_for_architecture_types_in_both_loads(model, tmp_path, field, value):
    doc = _doc(model)
    doc["architecture"]["args"][field] = value
    path = _write(tmp_path / "t.json", doc)
    target = MLP(2, [4, 3, 1], activation="tanh", seed=8)
    before = target.state_dict()
    with pytest.raises(ModelFileError, match="architecture|saved for"):
        MLP.load(path)
    with pytest.raises(ModelFileError, match="saved for"):
        target.load(path)  # 2.0 == 2 in Python, but a file saved by this library says 2
    assert target.state_dict() == before


def test_a_file_far_larger_than_its_architecture_is_refused_with_its_size(model, tmp_path):
    # a valid model followed by a megabyte of whitespace: valid JSON, but no such file is
    # written for 31 parameters
    text = json.dumps(_doc(model)) + " " * 2 ** 20
    path = _write(tmp_path / "padded.json", text)
    size = f"{len(text):,}"
    with pytest.raises(ModelFileError, match=rf"padded\.json.*{size} bytes.*31 parameters"):
        MLP.load(path)
    target = MLP(2, [4, 3, 1], activation="tanh", seed=8)
    before = target.state_dict()
    with pytest.raises(ModelFileError, match=rf"{size} bytes.*31 parameters"):
        target.load(path)
    assert target.state_dict() == before


def test_a_gigabyte_file_is_refused_before_it_is_read(model, tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(10 ** 9)  # sparse: takes no disk space
    with pytest.raises(ModelFileError, match=r"1,000,000,000 bytes.*MAX_FILE_BYTES"):
        MLP.load(path)
    with pytest.raises(ModelFileError, match=r"1,000,000,000 bytes.*31 parameters"):
        model.load(path)


def test_a_larger_limit_can_be_set(model, tmp_path, monkeypatch):
    from tinygrad_scalar import nn
    path = tmp_path / "m.json"
    model.save(path)
    monkeypatch.setattr(nn, "MAX_FILE_BYTES", 100)
    with pytest.raises(ModelFileError, match="MAX_FILE_BYTES = 100"):
        MLP.load(path)
    monkeypatch.setattr(nn, "MAX_FILE_BYTES", 10 ** 6)
    assert MLP.load(path).state_dict() == model.state_dict()


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/zero")
def test_special_files_are_refused_without_reading(model, tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading the usual way would wait for a writer forever
    before = model.state_dict()
    with pytest.raises(ModelFileError, match=r"pipe\.json: is a FIFO"):
        MLP.load(fifo)
    with pytest.raises(ModelFileError, match="is a FIFO"):
        model.load(fifo)
    if os.path.exists("/dev/zero"):  # read-only use of a system file: nothing is written
        with pytest.raises(ModelFileError, match="/dev/zero: is a character device"):
            MLP.load("/dev/zero")
    with pytest.raises(ModelFileError, match="is a folder"):
        MLP.load(tmp_path)
    assert model.state_dict() == before


def test_true_is_not_the_integer_one_in_an_architecture(tmp_path):
    n = Neuron(1, seed=0)
    doc = _doc(n)
    doc["architecture"]["args"]["nin"] = True  # True == 1 in Python
    path = _write(tmp_path / "n.json", doc)
    with pytest.raises(ModelFileError):
        Neuron.load(path)
    with pytest.raises(ModelFileError, match="saved for"):
        Neuron(1, seed=1).load(path)


def test_save_errors_name_the_users_path_never_a_temp_file(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="empty path") as e:
        model.save("")
    assert ".tmp" not in str(e.value)
    ro = tmp_path / "ro.json"
    model.save(ro)
    ro.chmod(0o444)
    with pytest.raises(PermissionError) as e:
        model.save(ro)
    assert e.value.filename == os.fspath(ro) and ".tmp" not in str(e.value)
    with pytest.raises(TypeError, match="str or os.PathLike"):
        model.save(b"m.json")
