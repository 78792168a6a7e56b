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


def test_precision_and_unused_variable(tmp_path):
    r = run("grad", "sin(a)", "a=1", "c=5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"f = sin(a) = {math.sin(1.0):.6g}"  # 6 significant digits, as tables
    assert lines[1] == f"df/da = {math.cos(1.0):.6g}"
    assert lines[2] == "df/dc = 0   (not in the expression)"
    r = run("grad", "sin(a)", "a=1", "--digits", "17", cwd=tmp_path)
    assert r.stdout.splitlines()[:2] == [f"f = sin(a) = {math.sin(1.0):.17g}",
                                         f"df/da = {math.cos(1.0):.17g}"]


def test_numbers_print_with_one_precision(tmp_path):
    # 0.8*0.8 is 0.6400000000000001 in floats: printed as 0.64, like the tables below it
    r = run("grad", "0.8*0.8*a", "a=1", "--explain", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["f = 0.8*0.8*a = 0.64", "df/da = 0.64"]
    assert "0000000" not in r.stdout
    doc = grad_json("0.8*0.8*a", "a=1", cwd=tmp_path)
    assert doc["value"] == 0.8 * 0.8  # JSON keeps every bit
    r = run("grad", "a", "a=1", "--digits", "0", cwd=tmp_path)
    assert r.returncode == 2 and "from 1 to 17" in r.stderr


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


def test_paths_through_relus_flat_part_give_backwards_0(tmp_path):
    # sqrt'(0) = inf reaches relu(b) at b = -1, whose flat part passes nothing: df/db is 0, and
    # the path's product must be too (not 0 x 1 x inf = nan)
    args = ("sqrt(relu(b) + a)", "a=0", "b=-1", "--paths", "b")
    r = run("grad", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "df/db = 0" in r.stdout and "0 (passes nothing) x 1 x inf  0" in r.stdout
    assert "sum of the products = 0;  df/db from backward = 0" in r.stdout
    pb = grad_json(*args, cwd=tmp_path)["paths"]["b"]
    assert pb["total"] == pb["grad"] == 0.0 and pb["paths"][0]["product"] == 0.0
    assert pb["paths"][0]["masked"] == [0] and pb["masked"] is True


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


def strict_json(text):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


@settings(max_examples=int(os.environ.get("N_FUZZ", 150)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=6))
def test_fuzz_main_json_output_is_strict_json(rest):
    argv = ["grad", "a*b + log(a)", "a=2", "b=3"] + rest + ["--json"]
    code, out, err = call(argv)
    options = argv[:argv.index("--")] if "--" in argv else argv  # after '--': arguments
    if "-h" in options:  # help (or argparse refusing -h as the value of --paths)
        assert code in (0, 2)
        assert out.startswith("usage: tinygrad-scalar grad") if code == 0 else strict_json(out)
        return
    if "--json" not in options:  # --json came after '--': an argument, refused as NAME=VALUE
        assert code == 2 and out == "" and err.count("tinygrad-scalar: error:") == 1, err
        return
    doc = strict_json(out)  # every outcome is one JSON object on stdout
    if code == 0:
        assert err == ""
        assert doc["expression"] == "a*b + log(a)"
        assert doc["gradients"]["a"] == 3 + 1 / 2 and doc["gradients"]["b"] == 2
    else:
        assert code in (1, 2) and set(doc) == {"error"}, doc
        e = doc["error"]
        assert e["exit_status"] == code and e["kind"] in ("usage", "math", "failure")
        assert e["message"] and e["message"] in err  # the same words as on stderr


def test_demo_compiled_through_the_command_line(tmp_path):
    r = run("demo", "--compiled", "--quiet", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "accuracy 100.0%" in r.stdout.splitlines()[0]  # moons, through the NumPy replay
    assert (tmp_path / "out" / "neuron.svg").exists()
    assert (tmp_path / "out" / "moons_boundary.png").stat().st_size > 1000


# -- issue 12 §2, §3; issue 13 §6; issue 16 §1 ------------------------------------------------

def test_negative_base_with_a_variable_exponent_says_why_the_gradient_is_nan(tmp_path):
    r = run("grad", "(-2)**x", "x=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["f = (-2)**x = -2", "df/dx = nan"]
    assert lines[2].startswith("note: df/dx = nan: the power f has a negative base (-2)")
    assert "no real derivative toward its exponent x" in lines[2]
    doc = grad_json("(-2)**x", "x=1", cwd=tmp_path)
    assert doc["gradients"] == {"x": "nan"} and "negative base" in doc["notes"][0]
    # a finite gradient gets no note
    assert "note" not in run("grad", "2**x", "x=1", cwd=tmp_path).stdout


def test_an_infinite_gradient_names_its_edge(tmp_path):
    r = run("grad", "sqrt(a)*b", "a=0", "b=1", cwd=tmp_path)
    assert r.returncode == 0
    assert ("note: df/da = inf: the local derivative of sqrt(a) (sqrt) toward a is infinite"
            in r.stdout)


def test_squared_error_shows_no_nan_toward_the_constant(tmp_path):
    # (p - t)**2 with p < t: d/d2 of (p-t)**2 is nan, and nobody needs it
    args = ("(p - t)**2", "p=0.2", "t=1")
    r = run("grad", *args, "--explain", "--forward", "p", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "nan" not in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln.split()[:1] == ["2"]]
    assert rows and all(" - " in ln or ln.rstrip().endswith("-") for ln in rows), rows
    assert "(a constant: no gradient needed)" in r.stdout
    doc = grad_json(*args, "--explain", "--forward", "p", cwd=tmp_path)
    edges = [e for s in doc["explain"] for e in s["edges"]]
    const = [e for e in edges if e["constant"]]
    assert [e["input"] for e in const] == ["2"]
    assert const[0]["local"] is None and const[0]["contribution"] is None
    assert all(isinstance(e["local"], float) for e in edges if not e["constant"])
    rows = {row["node"]: row for row in doc["forward"]["p"]["rows"]}
    assert rows["2"]["adjoint"] is None and rows["p"]["adjoint"] == pytest.approx(2 * (0.2 - 1))
    assert "nan" not in json.dumps(doc)


@needs_dot
def test_edge_labels_show_no_derivative_toward_a_constant(tmp_path):
    r = run("grad", "(p - t)**2", "p=0.2", "t=1", "--svg", "e.svg", "--edge-labels",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / "e.svg").read_text()
    assert ">nan<" not in svg
    assert ">&#45;1.6<" in svg or ">-1.6<" in svg  # d/d(p-t) = 2*(p-t) is still labelled


def test_interior_nodes_are_named_after_their_text(tmp_path):
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", "--explain", "--paths", "b",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "n2" not in out and "n4" not in out  # no generated names
    assert "f     *   6     1             a+b" in out
    assert "b -> b+1 -> f" in out and "b -> a+b -> f" in out
    doc = grad_json("(a+b)*(b+1)", "a=2", "b=1", "--forward", "a", cwd=tmp_path)
    assert [row["node"] for row in doc["forward"]["a"]["rows"]] == ["a", "b", "a+b", "1",
                                                                    "b+1", "f"]


@needs_dot
def test_picture_names_interior_nodes_after_their_text(tmp_path):
    r = run("grad", "(a+b)*(b+1)", "a=2", "b=1", "--svg", "g.svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / "g.svg").read_text()
    assert ">a+b<" in svg and ">b+1<" in svg and ">f<" in svg


def test_parallel_edges_are_told_apart_in_paths(tmp_path):
    r = run("grad", "a*a*a", "a=2", "--paths", "a", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    paths = [ln.split(None, 1)[1].split("  ")[0] for ln in r.stdout.splitlines()
             if ln[:2] in ("1 ", "2 ", "3 ")]
    assert paths == ["a -[1st input]-> a*a -> f", "a -[2nd input]-> a*a -> f", "a -> f"]
    assert len(set(paths)) == 3
    doc = grad_json("a*a*a", "a=2", "--paths", "a", cwd=tmp_path)
    assert [p["inputs"] for p in doc["paths"]["a"]["paths"]] == [[1, 1], [2, 1], [2]]


def test_parallel_edges_with_different_derivatives(tmp_path):
    # x**x: the base edge has x*x**(x-1), the exponent edge x**x*log(x)
    doc = grad_json("x**x", "x=2", "--paths", "x", cwd=tmp_path)
    ps = doc["paths"]["x"]["paths"]
    assert [p["inputs"] for p in ps] == [[1], [2]]
    assert ps[0]["derivs"] == [2 * 2 ** 1] and ps[1]["derivs"] == [pytest.approx(4 * math.log(2))]


def test_expression_starting_with_two_minuses(tmp_path):
    r = run("grad", "--a", "a=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["f = --a = 1", "df/da = 1"]
    r = run("grad", "--json", "--a*b", "a=2", "b=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["gradients"] == {"a": 3.0, "b": 2.0}
    r = run("grad", "--bogus", "a=1", cwd=tmp_path)  # read as an expression, and says so
    assert r.returncode == 2
    assert "unknown variable 'bogus'" in r.stderr and "was read as the expression" in r.stderr
    r = run("grad", "--exp", "a", "a=1", cwd=tmp_path)  # an abbreviated option stays one
    assert r.returncode == 0 and "backward from" in r.stdout


def test_pi_and_e_through_the_command_line(tmp_path):
    doc = grad_json("pi*x + e", "x=2", cwd=tmp_path)
    assert doc["value"] == math.pi * 2 + math.e and doc["gradients"] == {"x": math.pi}


@pytest.mark.parametrize("args,words", [
    (["2x", "x=1"], "write 2*x to multiply"),
    (["sin x", "x=1"], "write sin(x)"),
    (["ln(x)", "x=1"], "did you mean log?"),
    (["tanhh(a)", "a=1"], "did you mean tanh?"),
    (["a \u2212 1", "a=1"], "'\u2212' is not allowed (U+2212 MINUS SIGN): write - (ASCII)"),
    (["a \u00d7 2", "a=1"], "U+00D7 MULTIPLICATION SIGN): write * (ASCII)"),
    (["a\u00b2", "a=1"], "U+00B2 SUPERSCRIPT TWO): write **2 (ASCII)"),
    (["a", "a=\u22122"], "a=\u22122: value '\u22122' is not a number"),
    (["a", "a=\u22122"], "U+2212 MINUS SIGN): write - (ASCII) instead"),
    (["1**10000.0000001"], "exponent 10000.0000001 is too large"),
    (["a", "a=1", "--svg", "out.png"], "ends in .png but --svg writes SVG; name it out.svg"),
    (["a", "a=1", "--png", "out.svg"], "name it out.png, or use --svg 'out.svg'"),
    (["a", "a=1", "--svg", "out.PNG"], "ends in .PNG"),
])
def test_everyday_mistakes_get_a_hint(tmp_path, args, words):
    r = run("grad", *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "invalid" not in r.stderr
    assert os.listdir(tmp_path) == []


def test_a_huge_value_is_not_echoed_in_full(tmp_path):
    r = run("grad", "a", "a=" + "9" * 100_000 + "x", cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr) < 1000 and "100,001 characters" in r.stderr
    r = run("grad", "a", "a" * 100_000, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr) < 1000


def test_a_flat_sum_of_many_terms_is_accepted(tmp_path):
    r = run("grad", "+".join(["a"] * 240), "a=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["f = " + "+".join(["a"] * 240) + " = 240",
                                         "df/da = 240"]


@pytest.mark.parametrize("args,kind,code,words", [
    (["a +", "a=1"], "usage", 2, "syntax error"),
    (["b + a.real", "a=1", "b=1"], "usage", 2, "attribute access (.real) is not allowed"),
    (["log(a-1)", "a=1"], "math", 1, "log needs a positive number"),
    (["a", "a=1", "--bogus"], "usage", 2, "unrecognized arguments: --bogus"),
    (["a", "a=x"], "usage", 2, "a=x: value 'x' is not a number"),
    (["a", "a=1", "--svg", "missing/x.svg"], "usage", 2, "does not exist"),
])
def test_json_errors_are_json_on_stdout(tmp_path, args, kind, code, words):
    r = run("grad", *args, "--json", cwd=tmp_path)
    assert r.returncode == code
    doc = strict_json(r.stdout)
    e = doc["error"]
    assert e["kind"] == kind and e["exit_status"] == code and words in e["message"]
    assert words in r.stderr  # and still the message for people, on stderr
    if args[0] == "b + a.real":
        assert e["expression"] == "b + a.real" and e["span"] == [4, 10]


def _path_without_dot(tmp_path):
    """A PATH with this Python but without Graphviz's dot."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return str(bin_dir)


def test_without_graphviz_the_numbers_still_print(tmp_path):
    env_path = _path_without_dot(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "tinygrad_scalar", "grad", "(a+b)*(b+1)", "a=2", "b=1",
           "--svg", "f.svg"]
    env = dict(os.environ, PATH=env_path, PYTHONPATH=ROOT)
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["f = (a+b)*(b+1) = 6", "df/da = 2", "df/db = 5"]
    err = r.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("tinygrad-scalar: error: --svg 'f.svg': cannot "
                                               "draw the picture: Graphviz's `dot` program")
    assert "pipe" not in r.stderr and "source" not in r.stderr
    assert os.listdir(work) == []
    r = subprocess.run(cmd + ["--json"], cwd=work, env=env, capture_output=True, text=True,
                       timeout=120)
    doc = strict_json(r.stdout)
    assert r.returncode == 1 and doc["gradients"] == {"a": 2.0, "b": 5.0}
    assert doc["error"]["kind"] == "picture" and "svg" not in doc


@pytest.mark.parametrize("make,words", [
    ("file", "is a file, not a folder"),
    ("under_file", "is a file, so no folder can be made under it"),
    ("empty", "--out needs a folder name"),
])
def test_demo_out_errors_are_one_line(tmp_path, make, words):
    (tmp_path / "afile").write_text("keep")
    out = {"file": "afile", "under_file": "afile/sub", "empty": ""}[make]
    r = run("demo", "--quiet", "--steps", "1", "--out", out, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("tinygrad-scalar: error: --out")
    assert words in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "afile").read_text() == "keep" and sorted(os.listdir(tmp_path)) == [
        "afile"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write into a read-only folder")
def test_demo_out_in_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = run("demo", "--quiet", "--steps", "1", "--out", str(ro / "pics"), cwd=tmp_path)
    finally:
        ro.chmod(0o700)
    assert r.returncode == 2 and "permission denied" in r.stderr and "Traceback" not in r.stderr


def test_demo_write_failure_during_the_run_is_one_line(tmp_path, monkeypatch):
    import tinygrad_scalar.demo as demo

    def fail(**kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(kwargs["out"], "x.png"))
    monkeypatch.setattr(demo, "run_demo", fail)
    code, out, err = call(["demo", "--out", str(tmp_path / "pics")])
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Permission denied" in err and "x.png" in err


def test_repeated_sub_expressions_are_numbered(tmp_path):
    # two separate a+b nodes: each name in the table belongs to one node of the picture
    doc = grad_json("(a+b)*(a+b)", "a=1", "b=2", "--explain", cwd=tmp_path)
    assert [e["input"] for e in doc["explain"][0]["edges"]] == ["a+b #1", "a+b #2"]
    assert {s["node"] for s in doc["explain"][1:]} == {"a+b #1", "a+b #2"}
    assert doc["gradients"] == {"a": 6.0, "b": 6.0}
    r = run("grad", "(a+b)*(a+b)", "a=1", "b=2", "--explain", cwd=tmp_path)
    assert "@" not in r.stdout
