"""The command line: `tinygrad-scalar demo` and `tinygrad-scalar grad EXPR NAME=VALUE ...`.

A teacher at a terminal gets a gradient, its narration and its picture without writing Python.
Expressions go through the safe parser in expr.py (parsed, never evaluated). Exit status: 0 on
success, 2 on usage errors (bad flags, a bad expression, a bad NAME=VALUE, an unwritable output
file), 1 on math errors (log(0), 1/0, an overflow) and on a failure to render a picture. With
--json every outcome, errors included, is one JSON object on stdout. How numbers and tables are
shown is in cli_text.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from typing import Any, NoReturn, Optional, Sequence

PROG = "tinygrad-scalar"
EXIT_OK, EXIT_MATH, EXIT_USAGE = 0, 1, 2

_GRAD_EPILOG = """\
examples:
  tinygrad-scalar grad "(a+b)*(b+1)" a=2 b=1
      the value and the gradient of every input
  tinygrad-scalar grad "(a*b + c)*f" a=2 b=-3 c=10 f=-2 --explain
      the backward pass step by step, with the numbers it moves
  tinygrad-scalar grad "(a+b)*(b+1)" a=2 b=1 --paths b
      db as the sum over the paths from b to the output
  tinygrad-scalar grad "(a+b)*(b+1)" a=2 b=1 --forward a
      forward-mode tangents from a next to reverse-mode adjoints
  tinygrad-scalar grad "tanh(x1*w1 + x2*w2 + b)" x1=2 x2=0 w1=-3 w2=1 b=6.8814 \\
      --svg neuron.svg --edge-labels
      the graph as a picture, local derivatives on the edges
  tinygrad-scalar grad "log(x) + x**2" x=3 --json
      machine-readable output
  tinygrad-scalar grad "-a*b" a=1 b=2 c=5
      a leading minus works; c is not in the expression, so its gradient is 0
  tinygrad-scalar grad "0.8*0.8*a" a=1 --digits 17
      more significant digits (default 6)

expressions: numbers, the constants pi and e, the variables given, + - * / ** (power), unary
minus, parentheses and the functions relu tanh sigmoid exp log sqrt sin cos abs (one argument
each). Write 2*x (not 2x), sin(x) (not sin x), ASCII - * ** (not − × ²). Nothing else: the text
is parsed, never run as Python. Limits: {length} characters, {nodes} numbers, names and
operations, nesting depth {depth} (a flat a+b+c+... is one level), |exponent| <= {exponent}.

exit status: 0 success, 2 usage error, 1 math error (e.g. log(0)) or a picture that could not be
rendered.
"""

_DEMO_EPILOG = """\
examples:
  tinygrad-scalar demo
      train the classifiers and write the pictures to ./build
  tinygrad-scalar demo --out pictures --steps 50 --seed 1 --quiet
"""

_ROOT_NAMES = ("f", "y", "out", "result", "output")


class UsageError(Exception):
    """A mistake on the command line: printed as `tinygrad-scalar: error: ...`, exit 2.
    `expr_error` is the parser's ExprError when the expression was at fault (its span goes
    into the JSON error object)."""

    def __init__(self, message: str, expr_error: Optional[Exception] = None):
        super().__init__(message)
        self.expr_error = expr_error


class _ArgError(UsageError):
    """argparse's complaint, printed after the parser's usage line."""

    def __init__(self, message: str, parser: argparse.ArgumentParser):
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """argparse, with every usage error on one line starting `tinygrad-scalar: error:`."""

    def error(self, message: str) -> NoReturn:
        head = "the following arguments are required: "
        if message.startswith(head):
            # parse_intermixed_args lists optional positionals (nargs='*') as required too
            optional = {a.metavar or a.dest for a in self._actions
                        if not a.option_strings and a.nargs in ("*", "?")}
            names = [n for n in message[len(head):].split(", ") if n not in optional]
            if names:
                message = head + ", ".join(names)
        raise _ArgError(message, self)


class _Failure(Exception):
    """Something outside the user's input failed (Graphviz, the disk): printed, exit 1."""


class _PictureFailure(_Failure):
    """The picture could not be made; the numbers were computed and are still shown. `code`:
    1 when Graphviz failed, 2 when the file could not be written (a usage error)."""

    def __init__(self, message: str, code: int = EXIT_MATH):
        super().__init__(message)
        self.code = code


# -- the demo -------------------------------------------------------------------------------


def _check_folder(path: str, flag: str) -> None:
    """Refuse an output folder that cannot be made or written, before any training."""
    from .expr import shorten
    shown = shorten(path, quote=True)
    if not path:
        raise UsageError(f"{flag} needs a folder name")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {shown} is a file, not a folder: give a folder name (it is "
                         "created if missing)")
    head = os.path.abspath(path)
    while not os.path.exists(head):  # the nearest existing ancestor must be a writable folder
        head = os.path.dirname(head)
    if not os.path.isdir(head):
        raise UsageError(f"{flag} {shown}: {shorten(head, quote=True)} is a file, so no folder "
                         "can be made under it")
    if not os.access(head, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {shown}: cannot write in {shorten(head, quote=True)} "
                         "(permission denied)")


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    _check_folder(args.out, "--out")
    try:
        run_demo(out=args.out, steps=args.steps, seed=args.seed, quiet=args.quiet,
                 compiled=args.compiled)
    except OSError as e:  # e.g. the disk filled up, or permissions changed while training
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        raise _Failure(f"cannot write the demo's files into --out {args.out!r}:{where} "
                       f"{e.strerror or e}") from None
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return n


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


# -- grad -----------------------------------------------------------------------------------


def _variables(assignments: Sequence[str]) -> dict:
    """NAME=VALUE strings as {name: float}, in the order given; UsageError on any problem."""
    from .expr import ExprError, check_variable_name, parse_number, shorten
    out: dict = {}
    for item in assignments:
        if item.startswith(" -"):  # the space _protect_minus put there
            item = item[1:]
        name, eq, value = item.partition("=")
        name = name.strip()
        shown = shorten(item)
        if not eq:
            raise UsageError(f"expected NAME=VALUE, got {shorten(item, quote=True)} (the "
                             "expression comes first, then one NAME=VALUE per variable, e.g. "
                             "a=2)")
        try:
            check_variable_name(name)
            x = parse_number(value.strip())
        except ExprError as e:
            raise UsageError(f"{shown}: {e.reason}") from None
        if name in out:
            raise UsageError(f"variable {name!r} is given twice ({name}={_exact(out[name])} "
                             f"and {shown})")
        out[name] = x
    return out


def _exact(x: float) -> str:
    """A number as the user typed it: shortest round-trip form, whole numbers without '.0'."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x)) if x != 0 else "0"
    return repr(float(x))


def _digits(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 17:
        raise argparse.ArgumentTypeError(f"expected a whole number of significant digits from "
                                         f"1 to 17, got {text!r}")
    return n


def _json_safe(obj: Any) -> Any:
    """inf and nan as the strings "inf", "-inf", "nan", so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if obj != obj else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


_PICTURE_SUFFIXES = {".svg", ".png", ".pdf", ".jpg", ".jpeg", ".gif", ".gv", ".dot", ".ps",
                     ".eps", ".bmp", ".tif", ".tiff", ".webp"}


def _check_output(path: str, flag: str) -> None:
    """Refuse an output path that cannot be written, or whose name promises another format
    (`--svg out.png` would put SVG text in a .png file), before any work is done. A name
    without a suffix (graph, /dev/stdout) is taken as it is."""
    from .expr import shorten
    shown = shorten(path, quote=True)
    if not path:
        raise UsageError(f"{flag} needs a file name")
    fmt = flag.lstrip("-")
    stem, suffix = os.path.splitext(path)
    if suffix and suffix.lower() != "." + fmt and suffix.lower() in _PICTURE_SUFFIXES:
        other = suffix.lower().lstrip(".")
        alt = f", or use --{other} {shown}" if other in ("svg", "png") else ""
        raise UsageError(f"{flag} {shown}: the name ends in {suffix} but {flag} writes "
                         f"{fmt.upper()}; name it {os.path.basename(stem)}.{fmt}{alt}")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {shown} is a directory; give a file name such as graph.{fmt}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {shown}: the folder {shorten(parent, quote=True)} does not "
                         "exist")


def _no_constant_edge_labels(drawing, root) -> None:
    """Drop the edge labels on edges leaving a constant (the nan of x**2 at x < 0 on the edge
    from 2): nobody needs d f/d 2. The drawing names the value at topological position i `n<i>`
    (viz.draw_dot); an edge from n<i> into an operation is `n<i> -> n<j>op [label=...]`."""
    import re

    from .engine import topological_order
    order = topological_order(root)
    edge = re.compile(r"\tn(\d+) -> (n\d+op) \[label=[^\]]*\]\n?\Z")
    for k, line in enumerate(drawing.body):
        m = edge.match(line)
        if m and order[int(m.group(1))].is_constant:
            drawing.body[k] = f"\tn{m.group(1)} -> {m.group(2)}\n"


def _draw(root, fmt: str, path: str, edge_labels: bool) -> None:
    import graphviz

    from .expr import shorten
    from .files import write_atomic
    from .viz import draw_dot
    drawing = draw_dot(root, format=fmt, edge_labels=edge_labels)
    if edge_labels:
        _no_constant_edge_labels(drawing, root)
    flag = f"--{fmt} {shorten(path, quote=True)}"
    try:
        data = drawing.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise _PictureFailure(f"{flag}: cannot draw the picture: Graphviz's `dot` program is not "
                              "installed or not on PATH (install Graphviz, e.g. `apt install "
                              "graphviz` or `brew install graphviz`, or leave out "
                              f"--{fmt}); nothing was written") from None
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        why = f": {shorten(detail[-1], 200)}" if detail else ""
        raise _PictureFailure(f"{flag}: Graphviz could not render the picture (exit status "
                              f"{e.returncode}){why}; nothing was written") from None
    try:
        write_atomic(path, data)
    except OSError as e:
        raise _PictureFailure(f"cannot write {shorten(path, quote=True)}: {e.strerror or e}",
                              EXIT_USAGE) from None


def _grad(args: argparse.Namespace) -> int:
    from . import cli_text
    from .engine import Value, topological_order
    from .expr import ExprError, parse, shorten

    variables = _variables(args.assignments)
    picture = ("svg", args.svg) if args.svg is not None else (
        ("png", args.png) if args.png is not None else None)
    if args.edge_labels and picture is None:
        raise UsageError("--edge-labels only changes a picture: add --svg FILE or --png FILE")
    for flag, names in (("--paths", args.paths), ("--forward", args.forward)):
        for name in names or ():
            if name not in variables:
                given = ", ".join(variables) or "none"
                raise UsageError(f"{flag} {shorten(name)}: {shorten(name, quote=True)} is not "
                                 f"one of the variables given ({given})")
    if picture is not None:
        _check_output(picture[1], "--" + picture[0])

    leaves = {name: Value(x, label=name) for name, x in variables.items()}
    text = args.expr.strip(" ")  # also drops the space _protect_minus may have added
    try:
        # interior nodes are named after their text (a+b), so tables and pictures agree
        root = parse(text, leaves, label_nodes=True)
    except ExprError as e:
        hint = ""
        if e.reason.startswith("unknown variable") and e.start is not None:
            hint = ("\nhint: give every variable a value after the expression, e.g. "
                    f"{e.text[e.start:e.end]}=1")
        if getattr(args, "expr_was_dashed", False):
            hint += (f"\nhint: {shorten(text, quote=True)} was read as the expression, since "
                     "it is not an option of grad (see tinygrad-scalar grad --help)")
        raise UsageError(f"{e}{hint}", e) from None
    # the output's name in the text and tables: f, unless f is a variable
    out = next((n for n in _ROOT_NAMES if n not in leaves), "output")
    if (not root.is_leaf or root.is_constant) and out not in leaves:  # a variable keeps its name
        root.label = out
    _number_repeated_labels(root, set(leaves.values()))
    root.backward()
    used = {v for v in topological_order(root) if v.is_leaf}

    from .teach import narrate
    narration = narrate(root)
    notes = cli_text.non_finite_notes(narration, out, leaves)
    explain = narration if args.explain else None
    paths = forward = None
    if args.paths:
        from .teach import paths as path_sum
        paths = {name: path_sum(root, leaves[name]) for name in dict.fromkeys(args.paths)}
    if args.forward:
        from .teach import forward_mode
        forward = {name: forward_mode(root, leaves[name]) for name in dict.fromkeys(args.forward)}
    failure: Optional[_PictureFailure] = None
    if picture is not None:
        try:
            _draw(root, picture[0], picture[1], args.edge_labels)
        except _PictureFailure as e:  # the numbers are still right: show them, then the problem
            failure = e

    if args.json:
        doc: dict = {"expression": text, "value": root.data,
                     "gradients": {n: v.grad for n, v in leaves.items()}}
        if notes:
            doc["notes"] = notes
        if explain is not None:
            doc["explain"] = cli_text.explain_records(explain)
        if paths is not None:
            doc["paths"] = {n: cli_text.paths_dict(p) for n, p in paths.items()}
        if forward is not None:
            doc["forward"] = {n: cli_text.forward_dict(t) for n, t in forward.items()}
        if picture is not None and failure is None:
            doc[picture[0]] = picture[1]
        if failure is not None:
            doc["error"] = _error_object("picture", str(failure), failure.code)
        print(json.dumps(_json_safe(doc), indent=2, allow_nan=False))
        if failure is not None:
            print(f"{PROG}: error: {failure}", file=sys.stderr)
            return failure.code
        return EXIT_OK

    d = args.digits
    lines = [f"{out} = {text} = {cli_text.num(root.data, d)}"]
    for name, v in leaves.items():
        note = "" if v in used else "   (not in the expression)"
        lines.append(f"d{out}/d{name} = {cli_text.num(v.grad, d)}{note}")
    lines += notes
    if explain is not None:
        lines += ["", cli_text.explain_text(explain, d)]
    for p in (paths or {}).values():
        lines += ["", cli_text.paths_text(p, d)]
    for t in (forward or {}).values():
        lines += ["", cli_text.forward_text(t, d)]
    if picture is not None and failure is None:
        lines += ["", f"wrote {picture[1]}"]
    print("\n".join(lines))
    if failure is not None:
        sys.stdout.flush()
        print(f"{PROG}: error: {failure}", file=sys.stderr)
        return failure.code
    return EXIT_OK


def _number_repeated_labels(root, keep: set) -> None:
    """Nodes with the same text ((a+b)*(a+b) has two a+b) become `a+b #1`, `a+b #2`, in
    topological order, so every name in the tables is on exactly one node of the picture."""
    from .engine import topological_order
    groups: dict = {}
    for v in topological_order(root):
        if v not in keep and v.label:
            groups.setdefault(v.label, []).append(v)
    for label, vs in groups.items():
        if len(vs) > 1:
            for k, v in enumerate(vs, 1):
                v.label = f"{label} #{k}"


def _error_object(kind: str, message: str, code: int, expr_error=None) -> dict:
    """The JSON form of a failure: {"error": {...}} carries kind, message and exit status."""
    err: dict = {"kind": kind, "message": message, "exit_status": code}
    if expr_error is not None and getattr(expr_error, "start", None) is not None:
        err["expression"] = expr_error.text
        err["span"] = [expr_error.start, expr_error.end]
    return err


# -- the parser and main --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the whole command line (its subparsers: demo, grad)."""
    from . import expr

    parser = _Parser(prog=PROG, description="A scalar autograd engine for learning backprop.",
                     epilog="run 'tinygrad-scalar COMMAND --help' for a command's options "
                            "and examples")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    demo = sub.add_parser("demo", help="train the moons and spiral classifiers, write pictures",
                          description="Train small classifiers with the engine and write their "
                                      "pictures.",
                          epilog=_DEMO_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--out", default="build", metavar="DIR",
                      help="output folder (default: build)")
    demo.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                      help="training steps for moons")
    demo.add_argument("--seed", type=_int, default=None, metavar="S", help="random seed")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--compiled", action="store_true",
                      help="train through the traced graph replayed with NumPy (same results, "
                           "much faster)")
    demo.set_defaults(func=_demo)

    grad = sub.add_parser(
        "grad", help="the value and gradients of an expression, with narration and pictures",
        description="Compute an expression and the gradient of every input by backprop.",
        epilog=_GRAD_EPILOG.format(length=expr.MAX_LENGTH, nodes=expr.MAX_NODES,
                                   depth=expr.MAX_DEPTH, exponent=expr.MAX_EXPONENT),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    grad.add_argument("expr", metavar="EXPR", help='the expression, e.g. "(a+b)*(b+1)"')
    grad.add_argument("assignments", nargs="*", metavar="NAME=VALUE",
                      help="a value for each variable, e.g. a=2 b=-1.5")
    grad.add_argument("--explain", action="store_true",
                      help="narrate the backward pass: one row per edge, with the numbers")
    grad.add_argument("--paths", action="append", metavar="NAME",
                      help="d out/d NAME as a sum over paths (repeatable)")
    grad.add_argument("--forward", action="append", metavar="NAME",
                      help="forward-mode tangents from NAME next to reverse-mode adjoints "
                           "(repeatable)")
    pic = grad.add_mutually_exclusive_group()
    pic.add_argument("--svg", metavar="FILE", help="write the graph as SVG to FILE")
    pic.add_argument("--png", metavar="FILE", help="write the graph as PNG to FILE")
    grad.add_argument("--edge-labels", action="store_true",
                      help="label each edge of the picture with its local derivative")
    grad.add_argument("--json", action="store_true",
                      help="print machine-readable JSON (errors too, as {\"error\": {...}})")
    grad.add_argument("--digits", type=_digits, default=6, metavar="N",
                      help="significant digits of the numbers printed (default 6, at most 17; "
                           "JSON always has full precision)")
    grad.set_defaults(func=_grad)
    parser._grad_parser = grad  # type: ignore[attr-defined]
    return parser


def _version() -> str:
    from . import __version__
    return __version__


_VALUE_OPTIONS = ("--paths", "--forward", "--svg", "--png", "--digits")
_FLAG_OPTIONS = ("--explain", "--edge-labels", "--json", "--help")


def _is_option(arg: str) -> bool:
    """Whether argparse would read `arg` as one of grad's options (or an abbreviation of one,
    such as --exp; --svg=FILE too)."""
    name = arg.split("=", 1)[0]
    return arg == "-h" or (len(name) > 2 and any(o.startswith(name) for o in
                                                 _VALUE_OPTIONS + _FLAG_OPTIONS))


def _protect_minus(args: list) -> tuple:
    """(arguments for argparse, whether the expression starts with '--').

    An expression starting with '-' ("-a*b", "--a") would look like an option to argparse:
    the first argument that is neither an option nor an option's value is the expression, and
    gets a leading space, which the expression parser ignores. Later arguments starting with
    a single '-' are protected the same way; an unknown '--word' after the expression stays an
    unrecognized option. After '--' every argument is positional (argparse's intermixed
    parsing mishandles '--' itself, so it is dropped here)."""
    out: list = []
    expr_seen = dashed = False
    after_value_option = False
    for i, a in enumerate(args):
        if a == "--":
            rest = args[i + 1:]
            if rest and not expr_seen:
                dashed = rest[0].startswith("--")
            return out + [" " + b if b.startswith("-") else b for b in rest], dashed
        if after_value_option:  # the value of --paths, --svg, ...: left alone
            after_value_option = False
            out.append(a)
            continue
        if _is_option(a):
            after_value_option = "=" not in a and any(
                o.startswith(a) for o in _VALUE_OPTIONS) and not any(
                o.startswith(a) for o in _FLAG_OPTIONS)
            out.append(a)
            continue
        if not expr_seen:
            expr_seen = True
            dashed = a.startswith("--")
            out.append(" " + a if a.startswith("-") else a)
            continue
        if len(a) > 1 and a.startswith("-") and not a.startswith("--"):
            a = " " + a
        out.append(a)
    return out, dashed


def _json_requested(argv: list) -> bool:
    """--json among grad's options (before any '--', after which it would be an argument)."""
    if not argv or argv[0] != "grad":
        return False
    args = argv[1:]
    if "--" in args:
        args = args[:args.index("--")]
    return "--json" in args


def _report(kind: str, message: str, code: int, as_json: bool, expr_error=None) -> int:
    """Print a failure: on stderr as `tinygrad-scalar: error: ...`, and with --json also as a
    JSON object on stdout, so a program reading stdout always gets JSON."""
    head = "math error" if kind == "math" else "error"
    print(f"{PROG}: {head}: {message}", file=sys.stderr)
    if as_json:
        first = message.splitlines()[0] if message else message
        err = _error_object(kind, first, code, expr_error)
        err["detail"] = message
        print(json.dumps(_json_safe({"error": err}), indent=2, allow_nan=False))
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line on argv (default sys.argv[1:]) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    as_json = _json_requested(argv)
    try:
        if argv and argv[0] == "grad":
            # intermixed: flags may come before, between or after the NAME=VALUE arguments
            protected, dashed = _protect_minus(argv[1:])
            args = parser._grad_parser.parse_intermixed_args(protected)
            args.expr_was_dashed = dashed
        else:
            args = parser.parse_args(argv)
        return args.func(args)
    except SystemExit as e:  # argparse: --help or --version (0)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    except _ArgError as e:
        e.parser.print_usage(sys.stderr)
        return _report("usage", str(e), EXIT_USAGE, as_json)
    except UsageError as e:
        return _report("usage", str(e), EXIT_USAGE, as_json, e.expr_error)
    except _Failure as e:
        return _report("failure", str(e), EXIT_MATH, as_json)
    except (ArithmeticError, ValueError) as e:
        if not hasattr(e, "expr_span"):  # not a math error of the expression: a bug, show it
            raise
        from .expr import pointer
        where = pointer(e.expr_text, *e.expr_span)
        code = _report("math", f"{e}\n{where}", EXIT_MATH, as_json)
        return code
    except BrokenPipeError:  # e.g. `tinygrad-scalar grad ... | head -1`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_MATH


if __name__ == "__main__":
    sys.exit(main())
