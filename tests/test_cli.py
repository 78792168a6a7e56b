"""The command line, run as a user types it: `python -m tinygrad_scalar ...` in a subprocess."""
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_scalar.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, cwd, entry=None):
    """Run the command line in a fresh interpreter, as a user would."""
    cmd = (entry or [sys.executable, "-m", "tinygrad_scalar"]) + list(args)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def grad_json(*args, cwd):
    r = run("grad", *args, "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return json.loads(r.stdout)


# -- the lecture examples -----------------------------------------------------------------------

def test_issue_example_plain(tmp_path):
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["f = (a+b)*(b+1) = 6", "df/da = 2", "df/db = 5"]
    assert r.stderr == ""


def test_micrograd_lecture_example_json(tmp_path):
    doc = grad_json("(a*b + c)*f", "a=2", "b=-3", "c=10", "f=-2", cwd=tmp_path)
    assert doc["expression"] == "(a*b + c)*f"
    assert doc["value"] == -8.0
    # closed forms: dL/da = f*b, dL/db = f*a, dL/dc = f, dL/df = a*b + c
    assert doc["gradients"] == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}
    assert list(doc["gradients"]) == ["a", "b", "c", "f"]  # the order given


def test_neuron_example_json(tmp_path):
    xs = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.881373587019543)
    doc = grad_json("tanh(x1*w1 + x2*w2 + b)", *(f"{k}={v!r}" for k, v in xs.items()),
                    cwd=tmp_path)
    o = math.tanh(xs["x1"] * xs["w1"] + xs["x2"] * xs["w2"] + xs["b"])
    dn = 1 - o * o
    assert doc["value"] == pytest.approx(o, rel=1e-15)
    g = doc["gradients"]
    assert g["x1"] == pytest.approx(dn * xs["w1"]) == pytest.approx(-1.5, abs=1e-6)
    assert g["w1"] == pytest.approx(dn * xs["x1"]) == pytest.approx(1.0, abs=1e-6)
    assert g["x2"] == pytest.approx(dn * xs["w2"]) == pytest.approx(0.5, abs=1e-6)
    assert g["w2"] == 0.0 and g["b"] == pytest.approx(dn)


def test_full_precision_and_unused_variable(tmp_path):
    r = run("grad", "sin(a)", "a=1", "c=5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"f = sin(a) = {math.sin(1.0)!r}"
    assert lines[1] == f"df/da = {math.cos(1.0)!r}"
    assert lines[2] == "df/dc = 0   (not in the expression)"


def test_output_name_avoids_variable_names(tmp_path):
    r = run("grad", "f*y", "f=2", "y=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["out = f*y = 6", "dout/df = 3", "dout/dy = 2"]


def test_expression_starting_with_minus_and_intermixed_flags(tmp_path):
    r = run("grad", "-a*b", "a=2", "--json", "b=-1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["value"] == 2.0 and doc["gradients"] == {"a": 1.0, "b": -2.0}
    r = run("grad", "--", "-a", "a=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["f = -a = -3", "df/da = -1"]


def test_expression_of_only_numbers(tmp_path):
    r = run("grad", "2**10 - 24", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["f = 2**10 - 24 = 1000"]


def test_a_lone_number_is_named_f_in_the_narration_too(tmp_path):
    # the narration used to call it n0 right under "f = -3 = -3", and print an empty table
    r = run("grad", "-3", "--explain", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "f = -3 = -3"
    assert lines[2].startswith("backward from f (data -3): f is a leaf, so backward takes no "
                               "steps")
    assert lines[3] == "leaf gradients: f (const) = 1"


# -- the teaching flags --------------------------------------------------------------------------

def test_explain(tmp_path):
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", "--explain", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("f = (a+b)*(b+1) = 6\ndf/da = 2\ndf/db = 5\n\n")
    assert "backward from f" in out and "upstream x local" in out
    assert "b = 5" in out.splitlines()[-1] and "a = 2" in out.splitlines()[-1]
    # b's gradient is built in two += steps: 3 (through b+1) and then 2 (through a+b)
    assert "3 -> 5" in out


def test_explain_json_records_add_up(tmp_path):
    doc = grad_json("(a+b)*(b+1)", "a=2", "b=1", "--explain", cwd=tmp_path)
    steps = doc["explain"]
    assert [s["node"] for s in steps][0] == "f" and steps[0]["grad"] == 1.0
    into_b = [e["contribution"] for s in steps for e in s["edges"] if e["input"] == "b"]
    assert sorted(into_b) == [2.0, 3.0] and sum(into_b) == doc["gradients"]["b"]


def test_paths(tmp_path):
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", "--paths", "b", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "paths from b to f: 2 paths" in r.stdout
    assert "sum of the products = 5" in r.stdout
    doc = grad_json("(a+b)*(b+1)", "a=2", "b=1", "--paths", "b", "--paths", "a", cwd=tmp_path)
    assert set(doc["paths"]) == {"a", "b"}
    pb = doc["paths"]["b"]
    assert pb["count"] == 2 and pb["total"] == 5.0 and pb["grad"] == 5.0
    assert sorted(p["product"] for p in pb["paths"]) == [2.0, 3.0]
    assert doc["paths"]["a"]["total"] == 2.0


def test_forward(tmp_path):
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", "--forward", "a", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "forward (tangent of f) = 2, reverse (adjoint of a) = 2" in r.stdout
    doc = grad_json("(a+b)*(b+1)", "a=2", "b=1", "--forward", "b", cwd=tmp_path)
    fb = doc["forward"]["b"]
    assert fb["forward"] == fb["reverse"] == doc["gradients"]["b"] == 5.0
    rows = {row["node"]: row for row in fb["rows"]}
    assert rows["b"]["tangent"] == 1.0 and rows["a"]["tangent"] == 0.0


def test_json_is_strict_with_infinite_gradients(tmp_path):
    r = run("grad", "sqrt(a)", "a=0", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert doc["value"] == 0.0 and doc["gradients"] == {"a": "inf"}


# -- pictures -----------------------------------------------------------------------------------

from conftest import needs_dot  # noqa: E402  (skips where Graphviz's dot is missing)


@needs_dot
def test_svg_written_atomically(tmp_path):
    target = tmp_path / "g.svg"
    target.write_text("old")
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", "--svg", "g.svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "wrote g.svg"
    svg = target.read_text()
    assert "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert ">a<" in svg and ">b<" in svg  # the leaves are named after the variables
    assert sorted(os.listdir(tmp_path)) == ["g.svg"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not 0600


@needs_dot
def test_edge_labels_and_json_name_the_file(tmp_path):
    doc = grad_json("a*b", "a=2", "b=7", "--svg", "plain.svg", cwd=tmp_path)
    assert doc["svg"] == "plain.svg"
    run("grad", "a*b", "a=2", "b=7", "--svg", "labelled.svg", "--edge-labels", cwd=tmp_path)
    plain = (tmp_path / "plain.svg").read_text()
    labelled = (tmp_path / "labelled.svg").read_text()
    assert plain != labelled
    # d(a*b)/da = b = 7 appears as an edge label only in the labelled picture
    assert labelled.count(">7<") > plain.count(">7<")


@needs_dot
def test_png(tmp_path):
    r = run("grad", "relu(x)", "x=1", "--png", "out.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- help, version, entry points -----------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["--help"], ["grad", "demo", "COMMAND"]),
    (["grad", "--help"], ["examples:", "--explain", "--paths", "--forward", "--svg", "--png",
                          "--edge-labels", "--json", "exit status", "relu tanh sigmoid"]),
    (["demo", "--help"], ["examples:", "--out", "--steps", "--seed", "--quiet"]),
])
def test_help(tmp_path, args, words):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for w in words:
        assert w in r.stdout, w
    assert r.stdout.startswith("usage: tinygrad-scalar")


def test_version(tmp_path):
    r = run("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("tinygrad-scalar ")


def test_console_script(tmp_path):
    script = shutil.which("tinygrad-scalar", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the console script is not installed next to this Python")
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", cwd=tmp_path, entry=[script])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2] == "df/db = 5"


# -- errors: usage errors exit 2, math errors exit 1 ----------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["grad", "a*b", "a=1", "a=2"], "variable 'a' is given twice (a=1 and a=2)"),
    (["grad", "a*b", "a=x", "b=1"], "a=x: value 'x' is not a number"),
    (["grad", "a*b", "a=nan", "b=1"], "a=nan: value 'nan' is not a number"),
    (["grad", "a*b", "a=1e999", "b=1"], "is too large"),
    (["grad", "a*b", "a=1"], "unknown variable 'b' (variables given: a)"),
    (["grad", "a*b", "a=1", "b"], "expected NAME=VALUE, got 'b'"),
    (["grad", "a", "1a=2"], "not a valid variable name"),
    (["grad", "a", "sin=2"], "function name"),
    (["grad", "foo(a)", "a=1"], "unknown function 'foo'"),
    (["grad", "a.__class__", "a=1"], "attribute access (.__class__) is not allowed"),
    (["grad", "a[0]", "a=1"], "subscripts"),
    (["grad", "(lambda: a)", "a=1"], "lambda functions are not allowed"),
    (["grad", "[a for a in b]", "a=1", "b=1"], "comprehensions are not allowed"),
    (["grad", "a + 'x'", "a=1"], "strings are not allowed"),
    (["grad", "exp(a, base=2)", "a=1"], "keyword arguments are not allowed"),
    (["grad", "__import__('os').system('echo hi')"], "attribute access (.system)"),
    (["grad", "a +", "a=1"], "syntax error"),
    (["grad", "9**9**9**9"], "exponent 387420489 is too large"),
    (["grad", "1+" * 1200 + "1"], "too long"),
    (["grad", "a", "a=1", "--paths", "z"], "--paths z: 'z' is not one of the variables"),
    (["grad", "a", "a=1", "--forward", "z"], "--forward z"),
    (["grad", "a", "a=1", "--edge-labels"], "--edge-labels only changes a picture"),
    (["grad", "a", "a=1", "--svg", "x.svg", "--png", "x.png"], "not allowed with argument"),
    (["grad", "a", "a=1", "--svg", "missing/x.svg"], "does not exist"),
    (["grad", "a", "a=1", "--svg", "."], "is a directory"),
    (["grad", "a", "a=1", "--bogus"], "unrecognized arguments: --bogus"),
    (["grad"], "required: EXPR"),
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["demo", "--steps", "0"], "expected a positive whole number"),
])
def test_usage_errors_exit_2(tmp_path, args, words):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("tinygrad-scalar: error:")]
    assert len(err_lines) == 1, r.stderr
    assert words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert os.listdir(tmp_path) == []  # nothing written


def test_missing_expression_does_not_call_the_optional_values_required(tmp_path):
    # argparse's intermixed parsing used to say "required: EXPR, NAME=VALUE", though
    # `tinygrad-scalar grad 3` (no NAME=VALUE at all) is fine
    r = run("grad", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == ("tinygrad-scalar: error: the following arguments are "
                                         "required: EXPR")
    assert run("grad", "3", cwd=tmp_path).returncode == 0


def test_usage_error_points_at_the_offending_part(tmp_path):
    r = run("grad", "a + b.real", "a=1", "b=2", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0] == "tinygrad-scalar: error: attribute access (.real) is not allowed"
    assert lines[1:] == ["  a + b.real", "      ^^^^^^"]


@pytest.mark.parametrize("args,words,carets", [
    (["log(a-2)", "a=2"], "log(0.0): log needs a positive number", "^^^^^^^^"),
    (["1/(a-a)", "a=3"], "division by zero", "^^^^^^^"),
    (["exp(a)", "a=1000"], "exp(1000.0)", "^^^^^^"),
    (["a*1e308*10", "a=1"], "overflows", "^^^^^^^^^^"),
    (["sqrt(-a)", "a=1"], "sqrt needs a non-negative number", "^^^^^^^^"),
    (["(-a)**0.5", "a=8"], "negative base needs an integer exponent", "^^^^^^^^^"),
])
def test_math_errors_exit_1(tmp_path, args, words, carets):
    r = run("grad", *args, cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith("tinygrad-scalar: math error: ") and words in lines[0], r.stderr
    assert lines[2].strip() == carets


# -- fuzzing the whole command line in-process ---------------------------------------------------

def call(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


_PIECES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["a=1", "b=-2", "a=2", "x=0", "a=", "=1", "a=b", "--explain", "--json",
                     "--paths", "--forward", "a", "b", "--edge-labels", "-", "--", "-h",
                     "log(a)", "a*b", "(a+b)*(b+1)", "9**9**9", "-a", "a/0", "sin(x)"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40), st.lists(_PIECES, max_size=6))
def test_fuzz_main_never_raises(expr, rest):
    code, out, err = call(["grad", expr] + rest)
    assert code in (0, 1, 2)
    if code == 0:
        assert err == "" and out
    else:
        assert "tinygrad-scalar: error:" in err or "tinygrad-scalar: math error:" in err, err
    if code == 1:
        assert "math error" in err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=6))
def test_fuzz_main_json_output_is_strict_json(rest):
    code, out, err = call(["grad", "a*b + log(a)", "a=2", "b=3"] + rest + ["--json"])
    if code == 0 and out and "--help" not in rest and "-h" not in rest:
        doc = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
        assert doc["expression"] == "a*b + log(a)"


def test_demo_compiled_through_the_command_line(tmp_path):
    r = run("demo", "--compiled", "--quiet", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "accuracy 100.0%" in r.stdout.splitlines()[0]  # moons, through the NumPy replay
    assert (tmp_path / "out" / "neuron.svg").exists()
    assert (tmp_path / "out" / "moons_boundary.png").stat().st_size > 1000
