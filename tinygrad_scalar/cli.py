"""The command line: `tinygrad-scalar demo` and `tinygrad-scalar grad EXPR NAME=VALUE ...`.

A teacher at a terminal gets a gradient, its narration and its picture without writing Python.
Expressions go through the safe parser in expr.py (parsed, never evaluated). Exit status: 0 on
success, 2 on usage errors (bad flags, a bad expression, a bad NAME=VALUE, an unwritable output
file), 1 on math errors (log(0), 1/0, an overflow) and on a failure to render a picture.
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

expressions: numbers, the variables given, + - * / ** (power), unary minus, parentheses and the
functions relu tanh sigmoid exp log sqrt sin cos abs (one argument each). Nothing else: the
text is parsed, never run as Python. Limits: {length} characters, {nodes} numbers, names and
operations, nesting depth {depth}, |exponent| <= {exponent}.

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
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{PROG}: error: {message}\n")


class UsageError(Exception):
    """A mistake on the command line: printed as `tinygrad-scalar: error: ...`, exit 2."""


class _Failure(Exception):
    """Something outside the user's input failed (Graphviz): printed, exit 1."""


# -- the demo -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo(out=args.out, steps=args.steps, seed=args.seed, quiet=args.quiet,
             compiled=args.compiled)
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
    from .expr import ExprError, check_variable_name, parse_number
    out: dict = {}
    for item in assignments:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq:
            raise UsageError(f"expected NAME=VALUE, got {item!r} (the expression comes first, "
                             "then one NAME=VALUE per variable, e.g. a=2)")
        try:
            check_variable_name(name)
            x = parse_number(value.strip())
        except ExprError as e:
            raise UsageError(f"{item}: {e.reason}") from None
        if name in out:
            raise UsageError(f"variable {name!r} is given twice ({name}={_num(out[name])} and "
                             f"{item})")
        out[name] = x
    return out


def _num(x: float) -> str:
    """A number in full precision (shortest round-trip), whole numbers without '.0'."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x)) if x != 0 else "0"
    return repr(float(x))


def _json_safe(obj: Any) -> Any:
    """inf and nan as the strings "inf", "-inf", "nan", so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if obj != obj else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _check_output(path: str, flag: str) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if not path:
        raise UsageError(f"{flag} needs a file name")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a directory; give a file name such as graph.svg")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {path!r}: the folder {parent!r} does not exist")


def _draw(root, fmt: str, path: str, edge_labels: bool) -> None:
    import graphviz

    from .files import write_atomic
    from .viz import draw_dot
    try:
        data = draw_dot(root, format=fmt, edge_labels=edge_labels).pipe(format=fmt)
    except graphviz.ExecutableNotFound as e:
        raise _Failure(str(e)) from None
    except subprocess.CalledProcessError as e:
        raise _Failure(f"Graphviz failed to render the {fmt}: {e}") from None
    try:
        write_atomic(path, data)
    except OSError as e:
        raise UsageError(f"cannot write {path!r}: {e.strerror or e}") from None


def _grad(args: argparse.Namespace) -> int:
    from .engine import Value, topological_order
    from .expr import ExprError, parse

    variables = _variables(args.assignments)
    picture = ("svg", args.svg) if args.svg is not None else (
        ("png", args.png) if args.png is not None else None)
    if args.edge_labels and picture is None:
        raise UsageError("--edge-labels only changes a picture: add --svg FILE or --png FILE")
    for flag, names in (("--paths", args.paths), ("--forward", args.forward)):
        for name in names or ():
            if name not in variables:
                given = ", ".join(variables) or "none"
                raise UsageError(f"{flag} {name}: {name!r} is not one of the variables given "
                                 f"({given})")
    if picture is not None:
        _check_output(picture[1], "--" + picture[0])

    leaves = {name: Value(x, label=name) for name, x in variables.items()}
    text = args.expr.strip(" ")  # also drops the space _protect_minus may have added
    try:
        root = parse(text, leaves)
    except ExprError as e:
        hint = ""
        if e.reason.startswith("unknown variable") and e.start is not None:
            hint = ("\nhint: give every variable a value after the expression, e.g. "
                    f"{e.text[e.start:e.end]}=1")
        raise UsageError(f"{e}{hint}") from None
    # the output's name in the text and tables: f, unless f is a variable
    out = next((n for n in _ROOT_NAMES if n not in leaves), "output")
    if (not root.is_leaf or root.is_constant) and out not in leaves:  # a variable keeps its name
        root.label = out
    root.backward()
    used = {v for v in topological_order(root) if v.is_leaf}

    explain = paths = forward = None
    if args.explain:
        from .teach import narrate
        explain = narrate(root)
    if args.paths:
        from .teach import paths as path_sum
        paths = {name: path_sum(root, leaves[name]) for name in dict.fromkeys(args.paths)}
    if args.forward:
        from .teach import forward_mode
        forward = {name: forward_mode(root, leaves[name]) for name in dict.fromkeys(args.forward)}
    if picture is not None:
        _draw(root, picture[0], picture[1], args.edge_labels)

    if args.json:
        doc: dict = {"expression": text, "value": root.data,
                     "gradients": {n: v.grad for n, v in leaves.items()}}
        if explain is not None:
            doc["explain"] = explain.records()
        if paths is not None:
            doc["paths"] = {n: p.to_dict() for n, p in paths.items()}
        if forward is not None:
            doc["forward"] = {n: t.to_dict() for n, t in forward.items()}
        if picture is not None:
            doc[picture[0]] = picture[1]
        print(json.dumps(_json_safe(doc), indent=2, allow_nan=False))
        return EXIT_OK

    lines = [f"{out} = {text} = {_num(root.data)}"]
    for name, v in leaves.items():
        note = "" if v in used else "   (not in the expression)"
        lines.append(f"d{out}/d{name} = {_num(v.grad)}{note}")
    if explain is not None:
        lines += ["", explain.to_text()]
    for p in (paths or {}).values():
        lines += ["", p.to_text()]
    for t in (forward or {}).values():
        lines += ["", t.to_text()]
    if picture is not None:
        lines += ["", f"wrote {picture[1]}"]
    print("\n".join(lines))
    return EXIT_OK


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
    grad.add_argument("--json", action="store_true", help="print machine-readable JSON")
    grad.set_defaults(func=_grad)
    parser._grad_parser = grad  # type: ignore[attr-defined]
    return parser


def _version() -> str:
    from . import __version__
    return __version__


_VALUE_OPTIONS = {"--paths", "--forward", "--svg", "--png"}


def _protect_minus(args: list) -> list:
    """An expression starting with '-' ("-a*b") would look like an option to argparse: give it
    a leading space, which the expression parser ignores. Option values are left alone; after
    '--' every argument is positional (argparse's intermixed parsing mishandles '--' itself,
    so it is dropped here and the arguments after it are protected the same way)."""
    out: list = []
    for i, a in enumerate(args):
        if a == "--":
            return out + [" " + b if b.startswith("-") else b for b in args[i + 1:]]
        prev = out[-1] if out else ""
        if (len(a) > 1 and a.startswith("-") and not a.startswith("--") and a != "-h"
                and prev not in _VALUE_OPTIONS):
            a = " " + a
        out.append(a)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line on argv (default sys.argv[1:]) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if argv and argv[0] == "grad":
            # intermixed: flags may come before, between or after the NAME=VALUE arguments
            args = parser._grad_parser.parse_intermixed_args(_protect_minus(argv[1:]))
        else:
            args = parser.parse_args(argv)
        return args.func(args)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except _Failure as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_MATH
    except (ArithmeticError, ValueError) as e:
        if not hasattr(e, "expr_span"):  # not a math error of the expression: a bug, show it
            raise
        from .expr import pointer
        where = pointer(e.expr_text, *e.expr_span)
        print(f"{PROG}: math error: {e}\n{where}", file=sys.stderr)
        return EXIT_MATH
    except BrokenPipeError:  # e.g. `tinygrad-scalar grad ... | head -1`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_MATH


if __name__ == "__main__":
    sys.exit(main())
