"""The static replay under pressure: branches while tracing, threads, deep graphs, devices."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from tinygrad_scalar import Value, optim
from tinygrad_scalar.nn import MLP
from tinygrad_scalar.static import TraceError, trace
from tinygrad_scalar.static_train import CompiledStep


# ---------------------------------------------------------------------------------------------
# A Python branch on a traced input would be frozen: refused while tracing.

@pytest.mark.parametrize("fn", [
    lambda x: x * 2.0 if x > 0 else x * x,
    lambda x: max(x, 0.0) * 3,
    lambda x: min(x, 1.0),
    lambda x: x * 2.0 if (x * 3.0 + 1.0) >= 0.5 else x,
    lambda x: x if x else -x,
    lambda x: x * 2.0 if x <= 0 else x,
])
def test_branch_on_a_traced_input_is_a_trace_error_that_says_what_to_write(fn):
    with pytest.raises(TraceError, match=r"depends on the traced input 'x'.*relu"):
        trace(fn, 1.0)


def test_branch_free_forms_replay_right_on_both_sides():
    prog = trace(lambda x: x.relu() * 2.0 + (x - x.relu()) * (x - x.relu()), 1.0)
    assert prog(np.array([1.0, -2.0, 3.0])).tolist() == [2.0, 4.0, 6.0]
    relu3 = trace(lambda x: x.relu() * 3, 1.0)
    assert relu3(np.array([-2.0, 2.0])).tolist() == [0.0, 6.0]


def test_comparisons_on_parameters_and_constants_still_work_while_tracing():
    w, c = Value(2.0, "w"), Value(-1.0, "c")
    prog = trace(lambda x: x * (w if w > 1.0 else -w) + (c if c else 0.0) + max(w, c), 1.0,
                 params=[w, c])
    assert prog(np.array([1.0, 3.0])).tolist() == [2.0 - 1.0 + 2.0, 6.0 - 1.0 + 2.0]
    assert (Value(1.0) > 0.5) and bool(Value(2.0))  # outside a trace: as always


def test_branch_in_a_model_refused_by_the_compiled_step():
    class Branchy:
        nin = 1

        def __init__(self):
            self.w = Value(0.5, "w")

        def parameters(self):
            return [self.w]

        def __call__(self, x):
            return x[0] * self.w if x[0] > 0 else x[0]
    m = Branchy()
    with pytest.raises(TraceError, match="traced input"):
        CompiledStep(m, "mse", optim.SGD(m.parameters(), lr=0.1))


# ---------------------------------------------------------------------------------------------
# Threads: one program, calls from several threads, each with its own batch.

def test_one_program_shared_by_threads_gives_every_thread_its_own_right_numbers():
    model = MLP(3, [8, 8, 1], seed=3)
    prog = trace(lambda x: model(x), [0.0, 0.0, 0.0], params=model.parameters())
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(int(rng.integers(20, 60)), 3)) for _ in range(4)]
    want = []
    for X in batches:  # serial reference: outputs, reduced grads and input grads
        out = prog(X)
        g = prog.backward(write=False, inputs=True)
        want.append((out.copy(), g.params.copy(), g.inputs[0].copy()))
    wrong = []
    start = threading.Barrier(len(batches))

    def work(k: int) -> None:
        start.wait()
        for _ in range(40):
            try:
                out = prog(batches[k])
                g = prog.backward(write=False, inputs=True)
            except Exception:  # another thread's buffers of another shape: also wrong
                wrong.append(k)
                continue
            w = want[k]
            if not (np.array_equal(out, w[0]) and np.array_equal(g.params, w[1])
                    and np.array_equal(g.inputs[0], w[2])):
                wrong.append(k)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(batches))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not wrong, f"{len(wrong)} of {40 * len(batches)} calls gave another thread's numbers"


def test_backward_needs_a_forward_in_the_same_thread():
    x = Value(1.0, "x")
    prog = trace(lambda x: x * 2.0, 1.0)
    prog(np.array([1.0, 2.0]))
    errors = []

    def other():
        try:
            prog.backward()
        except RuntimeError as e:
            errors.append(str(e))
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and "same thread" in errors[0]
    assert x.grad == 0.0


# ---------------------------------------------------------------------------------------------
# to_torch: linear in depth, any batch size, a device.

def _chain(depth: int):
    def f(x):
        for _ in range(depth):
            x = (x * 0.999).tanh() + 0.001
        return x
    return trace(f, 0.5)


def _calls_to_build_torch(prog) -> int:
    """Python and C function calls made while building the module: a count of work that does
    not depend on the machine's speed."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1
    sys.setprofile(count)
    try:
        prog.to_torch()
    finally:
        sys.setprofile(None)
    return calls


def test_to_torch_work_grows_linearly_with_depth():
    pytest.importorskip("torch", reason="to_torch needs PyTorch")
    _chain(2).to_torch()  # imports and torch's first-call set-up are not the module's work
    small, big = _chain(500), _chain(5000)
    ratio = _calls_to_build_torch(big) / _calls_to_build_torch(small)
    assert ratio < 15, f"10x the depth cost {ratio:.1f}x the work (linear: about 10x)"


def test_to_torch_any_batch_size_and_a_device():
    torch = pytest.importorskip("torch", reason="to_torch needs PyTorch")
    model = MLP(2, [4, 1], seed=1)
    prog = trace(lambda x: model(x), [0.0, 0.0], params=model.parameters())
    tp = prog.to_torch(device="cpu")
    assert tp.params.device.type == "cpu"
    for B in (1, 7, 100_000):
        X = np.random.default_rng(B).normal(size=(B, 2))
        out = tp(torch.tensor(X))
        assert out.shape == (B,) and out.device.type == "cpu"
        np.testing.assert_allclose(out.detach().numpy(), prog(X), rtol=1e-13)
    tp32 = prog.to_torch(dtype=torch.float32, device=torch.device("cpu"))
    assert tp32(torch.zeros(3, 2)).dtype == torch.float32
    moved = prog.to_torch().to("cpu")  # module.to: the indices follow the parameters
    assert float(moved(torch.tensor([0.5, -0.5])).detach()) == prog([0.5, -0.5])
    with pytest.raises((RuntimeError, TypeError, ValueError)):
        prog.to_torch(device="no-such-device")


@pytest.mark.parametrize("seed", range(6))
def test_to_torch_matches_the_replay_on_mixed_graphs(seed):
    """Layers read as whole chunks of a block (cut by unbind) and rows picked one by one
    (index_select), in the same graph: outputs and autograd gradients as the replay's."""
    torch = pytest.importorskip("torch", reason="to_torch needs PyTorch")
    import random
    r = random.Random(seed)
    nin = r.randint(1, 4)
    m = MLP(nin, [r.randint(1, 6) for _ in range(r.randint(1, 3))] + [r.randint(2, 3)],
            seed=seed, activation=r.choice(["tanh", "relu"]))
    w = [Value(r.uniform(-1, 1), f"w{i}") for i in range(3)]

    def f(x):
        out = m(x)
        prods = [a * b for a in x for b in out]
        return [Value.sum(prods[i::2] + w[:1]) * w[1] for i in range(2)] + [sum(out) * w[2]]
    prog = trace(f, [0.1] * nin, params=m.parameters() + w)
    tp = prog.to_torch()
    X = np.random.default_rng(seed).normal(size=(9, nin))
    outs = prog(X)
    g = prog.backward([1.0] * len(outs), write=False)
    t = tp(torch.tensor(X))
    sum(x.sum() for x in t).backward()
    for a, b in zip(t, outs):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-12)
    np.testing.assert_allclose(tp.params.grad.numpy(), g.params, rtol=1e-10, atol=1e-12)


def test_an_unordered_input_slot_is_refused_with_the_shared_check():
    # a set of Values has no order to feed its columns in: refused, as models refuse sets
    from tinygrad_scalar.static import Program
    x, y = Value(1.0), Value(2.0)
    with pytest.raises(TypeError, match=r"inputs\[0\] needs a Value or a sequence of Values, "
                                        r"got set"):
        Program.from_graph(x * y, [{x, y}])
