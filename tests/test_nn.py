"""nn: Neuron, Layer, MLP: structure, naming, seeding, forward/backward against PyTorch."""
import math
import random

import pytest

from tinygrad_scalar.engine import Value, topological_order
from tinygrad_scalar.nn import MLP, Layer, Module, Neuron


def test_micrograd_moons_model_has_337_parameters():
    m = MLP(2, [16, 16, 1], seed=0)
    assert len(m.parameters()) == 337 == m.num_parameters()
    assert len({id(p) for p in m.parameters()}) == 337


def test_names_and_labels_follow_the_module_path():
    m = MLP(2, [3, 1], seed=0)
    names = [n for n, _ in m.named_parameters()]
    assert names[:4] == ["L0.N0.w0", "L0.N0.w1", "L0.N0.b", "L0.N1.w0"]
    assert names[-1] == "L1.N0.b" and len(names) == 3 * 3 + 4
    for name, p in m.named_parameters():
        assert p.label == name
    out = m([0.5, -0.25])
    labels = {v.label for v in topological_order(out)}
    assert {"L0.N0.z", "L0.N0.a", "L0.N2.a", "L1.N0.z", "x0", "x1"} <= labels
    assert out.label == "L1.N0.z"  # the last layer is linear: its sum is the output
    assert "L1.N0.a" not in labels
    n = Neuron(3, seed=1)
    assert [k for k, _ in n.named_parameters()] == ["w0", "w1", "w2", "b"]
    a = n([1.0, 2.0, 3.0])
    assert a.label == "a" and a._prev[0].label == "z"


def test_neuron_preactivation_is_one_sum_node():
    n = Neuron(4, activation="linear", seed=3)
    x = [Value(float(i)) for i in range(4)]
    z = n(x)
    assert z.op.name == "sum" and len(z._prev) == 5 and z._prev[-1] is n.b
    assert all(e._op == "*" for e in z._prev[:4])
    expected = sum(w.data * xi.data for w, xi in zip(n.w, x)) + n.b.data
    assert z.data == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("act,f", [
    ("relu", lambda z: max(z, 0.0)),
    ("tanh", math.tanh),
    ("sigmoid", lambda z: 1 / (1 + math.exp(-z))),
    ("linear", lambda z: z),
])
def test_activations(act, f):
    n = Neuron(2, activation=act, seed=5)
    n.load_state_dict({"w0": 0.7, "w1": -1.3, "b": 0.2})
    for x in ([1.0, 0.5], [-2.0, 1.0], [0.3, 0.9]):
        z = 0.7 * x[0] - 1.3 * x[1] + 0.2
        assert n(x).data == pytest.approx(f(z), rel=1e-14, abs=1e-15)


def test_initialisation_is_uniform_and_seeded():
    a, b = MLP(2, [8, 1], seed=7), MLP(2, [8, 1], seed=7)
    assert a.state_dict() == b.state_dict()
    c = MLP(2, [8, 1], seed=8)
    assert a.state_dict() != c.state_dict()
    d = MLP(2, [8, 1], rng=random.Random(7))
    assert d.state_dict() == a.state_dict()
    e = MLP(2, [8, 1], seed=random.Random(7))
    assert e.state_dict() == a.state_dict()
    for name, v in a.state_dict().items():
        if name.endswith(".b"):
            assert v == 0.0
        else:
            assert -1.0 <= v <= 1.0
    assert len(set(v for k, v in a.state_dict().items() if not k.endswith(".b"))) == 8 * 2 + 8


def test_unseeded_models_differ():
    assert MLP(2, [4, 1]).state_dict() != MLP(2, [4, 1]).state_dict()


def test_one_output_gives_a_value_several_a_list():
    assert isinstance(Layer(2, 1, seed=0)([1.0, 2.0]), Value)
    out = Layer(2, 3, seed=0)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 3
    assert isinstance(MLP(2, [4, 1], seed=0)([1.0, 2.0]), Value)
    out = MLP(2, [4, 3], seed=0)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 3


def test_hidden_layer_of_width_one_works():
    m = MLP(2, [16, 1, 1], seed=0)  # micrograd fails here: a Value is fed to the next layer
    out = m([0.3, -0.4])
    assert isinstance(out, Value)
    out.backward()
    assert m.layers[2].neurons[0].w[0].grad == pytest.approx(m.layers[1].neurons[0](
        [n([0.3, -0.4]) for n in m.layers[0].neurons]).data)


def test_inputs_may_be_numbers_or_values_and_gradients_reach_value_inputs():
    m = MLP(2, [3, 1], seed=2)
    x = [Value(0.4), Value(-1.1)]
    a = m(x)
    b = m([0.4, -1.1])
    assert a.data == b.data
    a.backward()
    # the gradient w.r.t. an input, checked by central differences
    h = 1e-6
    for i in range(2):
        up = [0.4, -1.1]
        dn = [0.4, -1.1]
        up[i] += h
        dn[i] -= h
        fd = (m(up).data - m(dn).data) / (2 * h)
        assert x[i].grad == pytest.approx(fd, rel=1e-6, abs=1e-8)
    import numpy as np
    assert m(np.array([0.4, -1.1])).data == b.data
    assert Neuron(1, seed=0)(2.0).data == Neuron(1, seed=0)([2.0]).data


def test_bad_inputs_are_clear_errors():
    m = MLP(2, [3, 1], seed=0)
    with pytest.raises(ValueError, match="expects 2 input"):
        m([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="expects 2 input"):
        m(1.0)
    with pytest.raises(TypeError, match=r"MLP: input 0 must be a number or a Value, got str"):
        m(["a", 1.0])
    with pytest.raises(TypeError, match=r"input 1 must be a number or a Value, got list"):
        m([1.0, [2.0]])
    with pytest.raises(TypeError, match=r"needs a sequence of 2 numbers or Values, got str"):
        m("ab")  # a string of the right length is not two numbers
    with pytest.raises(TypeError, match=r"Neuron\(3, .*sequence of 3 numbers.*got str"):
        Neuron(3, seed=0)("abc")
    with pytest.raises(TypeError):
        m(None)
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [3, 1], activation="gelu")
    with pytest.raises(ValueError, match="nouts"):
        MLP(2, [])
    with pytest.raises(ValueError, match="nouts"):
        MLP(2, 3)
    with pytest.raises(ValueError, match="width"):
        MLP(2, [3, 0])
    with pytest.raises(ValueError, match="nin"):
        Neuron(0)
    with pytest.raises(ValueError, match="nin"):
        Layer(True, 2)
    with pytest.raises(TypeError, match="seed"):
        Neuron(2, seed="x")
    with pytest.raises(TypeError, match="either"):
        Neuron(2, seed=1, rng=random.Random(1))


def test_repr_shows_the_structure():
    r = repr(MLP(2, [16, 16, 1], seed=0))
    assert r.splitlines()[0] == "MLP(2, [16, 16, 1], activation='relu'): 337 parameters"
    assert "L0: Layer(2, 16, activation='relu')" in r
    assert "L2: Layer(16, 1, activation='linear')" in r
    assert repr(Neuron(3, "tanh")) == "Neuron(3, activation='tanh')"


def test_zero_grad_and_parameters_order():
    m = MLP(2, [3, 2], seed=0)
    out = m([1.0, -1.0])
    Value.sum(out).backward()
    assert any(p.grad != 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())
    assert m.parameters() == [p for _, p in m.named_parameters()]
    assert isinstance(m, Module)


def test_hidden_activation_option_and_last_layer_linear():
    m = MLP(3, [4, 4, 2], activation="tanh", seed=0)
    assert [l.activation for l in m.layers] == ["tanh", "tanh", "linear"]


# ---------------------------------------------------------------------------------------------
# Against PyTorch: forward values and parameter gradients of nn.Sequential with the same weights

def _torch_copy(m: MLP, torch):
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    mods = []
    for layer in m.layers:
        lin = torch.nn.Linear(layer.nin, layer.nout).double()
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[w.data for w in n.w] for n in layer.neurons],
                                          dtype=torch.float64))
            lin.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64))
        mods.append(lin)
        if layer.activation != "linear":
            mods.append(acts[layer.activation]())
    return torch.nn.Sequential(*mods)


@pytest.mark.parametrize("act,nouts", [("relu", [16, 16, 1]), ("tanh", [5, 4, 3]),
                                       ("sigmoid", [6, 1, 2]), ("relu", [7, 3])])
def test_forward_and_gradients_equal_pytorch(act, nouts):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for this test")
    m = MLP(2, nouts, activation=act, seed=11)
    for layer in m.layers:  # non-zero biases, so their gradients are exercised too
        for n in layer.neurons:
            n.b.data = random.Random(id(n) % 1000).uniform(-0.5, 0.5)
    net = _torch_copy(m, torch)
    rng = random.Random(3)
    X = [[rng.uniform(-2, 2), rng.uniform(-2, 2)] for _ in range(12)]
    # the same scalar objective on both sides: sum over samples and outputs of out * c
    coef = [rng.uniform(-1, 1) for _ in range(nouts[-1])]
    total = []
    for x in X:
        out = m(x)
        out = out if isinstance(out, list) else [out]
        total += [o * c for o, c in zip(out, coef)]
    loss = Value.sum(total)
    m.zero_grad()
    loss.backward()
    tx = torch.tensor(X, dtype=torch.float64)
    tout = net(tx)
    tloss = (tout * torch.tensor(coef, dtype=torch.float64)).sum()
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12, abs=1e-12)
    for x, row in zip(X, tout.tolist()):
        out = m(x)
        out = out if isinstance(out, list) else [out]
        assert [o.data for o in out] == pytest.approx(row, rel=1e-12, abs=1e-12)
    lin = [mod for mod in net if isinstance(mod, torch.nn.Linear)]
    for layer, tl in zip(m.layers, lin):
        for j, n in enumerate(layer.neurons):
            assert [w.grad for w in n.w] == pytest.approx(tl.weight.grad[j].tolist(),
                                                          rel=1e-10, abs=1e-12)
            assert n.b.grad == pytest.approx(tl.bias.grad[j].item(), rel=1e-10, abs=1e-12)


def test_models_pickle_and_deepcopy():
    import copy
    import pickle
    m = MLP(2, [3, 2], activation="sigmoid", seed=0)
    for c in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert c.state_dict() == m.state_dict()
        assert [o.data for o in c([0.5, -0.5])] == [o.data for o in m([0.5, -0.5])]
        c.parameters()[0].data += 1.0
        assert c.state_dict() != m.state_dict()  # an independent copy


def test_numpy_integer_seeds_work_like_ints():
    np = pytest.importorskip("numpy")
    a, b = MLP(2, [3, 1], seed=np.int64(5)), MLP(2, [3, 1], seed=5)
    assert a.state_dict() == b.state_dict()
    assert Neuron(2, seed=np.int32(1)).state_dict() == Neuron(2, seed=1).state_dict()
    with pytest.raises(TypeError, match="seed"):
        MLP(2, [3, 1], seed=1.5)


def test_a_name_must_be_a_string():
    with pytest.raises(TypeError, match="name must be a string"):
        Layer(2, 3, name=3)
    with pytest.raises(TypeError, match="name must be a string"):
        Neuron(2, name=None)


@pytest.mark.parametrize("bad,match", [
    ({0: 5.0, 1: 7.0}, r"got a mapping, dict.*list\(d.values\(\)\)"),
    ({5.0, 7.0}, r"got a set \(no order\)"),
    (frozenset({5.0, 7.0}), r"a set \(no order\)"),
    ({"a": 1.0, "b": 2.0}.keys(), r"a set \(no order\)"),
])
def test_unordered_containers_are_refused(bad, match):
    m = MLP(2, [3, 1], seed=0)
    with pytest.raises(TypeError, match=match):
        m(bad)
    with pytest.raises(TypeError, match=match):
        Neuron(2, seed=0)(bad)
    with pytest.raises(TypeError, match=match):
        Layer(2, 2, seed=0)(bad)


def test_a_0d_array_is_a_clear_error():
    np = pytest.importorskip("numpy")
    m = MLP(2, [3, 1], seed=0)
    with pytest.raises(TypeError, match=r"MLP needs a sequence of 2 numbers.*0-d ndarray: "
                                        r"array\(1\.5\).*item\(\)"):
        m(np.array(1.5))
    assert m(np.array([1.5, 2.0])).data == m([1.5, 2.0]).data  # 1-d arrays still work
    assert m((v for v in [1.5, 2.0])).data == m([1.5, 2.0]).data  # a generator is ordered


# -- issue 12 §4: PyTorch's and micrograd's habits --------------------------------------------

class _Net(Module):
    """A user's module, PyTorch style: parts as attributes, nothing else written."""

    def __init__(self, width=3, seed=0):
        self.l1 = Layer(2, width, "tanh", seed=seed)
        self.scale = Value(1.5)
        self.blocks = [Neuron(width, seed=seed + 1), Neuron(width, seed=seed + 2)]
        self.heads = {"out": Neuron(2, "linear", seed=seed + 3)}
        self.shared = self.scale  # the same Value twice: one parameter
        self.cached = self.scale * 2.0  # a computed node is not a parameter
        self.note = "not a parameter"

    def __call__(self, x):
        h = self.l1(x)
        b = [n(h) for n in self.blocks]
        return self.heads["out"](b) * self.scale


def test_a_users_module_finds_its_parts_in_attribute_order():
    net = _Net()
    names = [n for n, _ in net.named_parameters()]
    expected = ([f"l1.N{j}.{w}" for j in range(3) for w in ("w0", "w1", "b")] + ["scale"]
                + [f"blocks.{i}.{w}" for i in range(2) for w in ("w0", "w1", "w2", "b")]
                + ["heads.out.w0", "heads.out.w1", "heads.out.b"])
    assert names == expected
    params = net.parameters()
    assert params[9] is net.scale and len({id(p) for p in params}) == len(params) == 21
    assert params[0] is net.l1.neurons[0].w[0] and params[-1] is net.heads["out"].b
    assert net.num_parameters() == 21 and list(net.state_dict()) == expected
    out = net([0.3, -0.2])
    net.zero_grad()
    out.backward()
    assert net.scale.grad == pytest.approx(out.data / 1.5)  # d(y*s)/ds = y
    assert any(p.grad != 0.0 for p in net.l1.parameters())


def test_a_users_module_saves_and_loads_without_writing_config(tmp_path):
    net = _Net(width=4)
    net.scale.data = -0.75
    net.save(tmp_path / "net.json")
    back = Module.load(tmp_path / "net.json")  # rebuilt from the recorded arguments
    assert type(back) is _Net and back.l1.nout == 4
    assert back.state_dict() == net.state_dict()
    assert back.architecture()["args"] == {"width": 4}  # seed is not architecture
    fresh = _Net(width=4, seed=7)
    assert fresh.state_dict() != net.state_dict()
    fresh.load(tmp_path / "net.json")
    assert fresh.state_dict() == net.state_dict()
    assert fresh([0.1, 0.2]).data == net([0.1, 0.2]).data
    from tinygrad_scalar.nn import ModelFileError
    with pytest.raises(ModelFileError, match="saved for"):
        _Net(width=3).load(tmp_path / "net.json")
    import copy
    import pickle
    for c in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert c.state_dict() == net.state_dict() and c.architecture() == net.architecture()


def test_cycles_between_modules_do_not_recurse_forever():
    a, b = _Net(), _Net(seed=5)
    a.friend, b.friend = b, a
    assert len(a.parameters()) == 42 and len(b.parameters()) == 42


def test_micrograds_neuron_signature():
    lin, relu = Neuron(2, nonlin=False, seed=0), Neuron(2, nonlin=True, seed=0)
    assert lin.activation == "linear" and relu.activation == "relu"
    assert Neuron(2, False, seed=0).activation == "linear"  # positional, as micrograd allows
    assert Layer(2, 3, nonlin=False, seed=0).activation == "linear"
    assert Neuron(2, seed=0).activation == "relu"
    lin.load_state_dict({"w0": -1.0, "w1": 0.5, "b": 0.0})
    assert lin([1.0, 0.0]).data == -1.0  # no relu clipping
    with pytest.raises(TypeError, match="either activation= or micrograd's nonlin="):
        Neuron(2, "tanh", nonlin=True)
    with pytest.raises(TypeError, match="nonlin must be True"):
        Neuron(2, nonlin=1)


def test_unseeded_models_draw_from_pythons_global_random():
    random.seed(1337)
    a = MLP(2, [16, 16, 1])
    random.seed(1337)
    b = MLP(2, [16, 16, 1])
    assert a.state_dict() == b.state_dict()
    # the same draws micrograd makes: uniform(-1, 1) per weight, neuron by neuron, biases 0
    random.seed(1337)
    expected = []
    for nin, nout in ((2, 16), (16, 16), (16, 1)):
        for _ in range(nout):
            expected += [random.uniform(-1, 1) for _ in range(nin)] + [0.0]
    assert list(a.state_dict().values()) == expected
    random.seed(1337)
    assert MLP(2, [4, 1], seed=5).state_dict() == MLP(2, [4, 1], seed=5).state_dict()
    random.seed(1337)
    c = MLP(2, [16, 16, 1], seed=1)  # a seed wins over the global state
    assert c.state_dict() != a.state_dict()
    assert c.state_dict() == MLP(2, [16, 16, 1], seed=1).state_dict()


def test_the_same_weights_as_micrograd_after_random_seed():
    micrograd_nn = pytest.importorskip("micrograd.nn", reason="micrograd is the oracle here")
    random.seed(1337)
    theirs = micrograd_nn.MLP(2, [16, 16, 1])
    random.seed(1337)
    ours = MLP(2, [16, 16, 1])
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    x = [0.5, -1.25]
    assert ours(x).data == pytest.approx(theirs(x).data, rel=1e-12)
