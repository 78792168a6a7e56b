"""A safe parser for arithmetic expressions typed by a person: text in, engine Values out.

The text is parsed with Python's `ast` module and then walked over a whitelist: numbers, the
variables given, `+ - * / **`, unary minus and plus, parentheses, and calls of the engine's
functions (relu, tanh, sigmoid, exp, log, sqrt, sin, cos, abs) with one argument. Nothing is
ever evaluated by Python (no `eval`, no `exec`, no `compile` to code): every accepted node is
turned straight into an engine operation on floats, so `9**9**9**9` never builds a big integer.

Anything else is refused with an `ExprError` whose message points at the offending part:

    >>> parse("a.real + 1", {"a": 2.0})
    Traceback (most recent call last):
    ...
    tinygrad_scalar.expr.ExprError: attribute access (.real) is not allowed
      a.real + 1
      ^^^^^^

Limits keep a hostile or mistaken input from hanging the machine or exhausting memory: the
text length (MAX_LENGTH), the number of operations and operands (MAX_NODES), the nesting depth
(MAX_DEPTH: operations nested inside one another; a flat chain such as a+b+c+d or a*b/c, one
operator repeated at one level, does not nest, since nothing here recurses along it) and the
size of any exponent (MAX_EXPONENT, checked on the exponent's value before the power is taken).

Habits from paper and other tools get a hint instead of Python jargon: `2x` (write 2*x),
`sin x` (write sin(x)), `ln(x)` (did you mean log?), Unicode such as − × ² (each named, with
its ASCII form). `pi` and `e` are the constants, unless a variable of that name is given.

Math errors (log(0), 1/0, an overflow) are the engine's own exceptions (ValueError,
ZeroDivisionError, OverflowError) with the engine's message; `parse` adds the attributes
`expr_text` and `expr_span` (start, end columns) so a caller can point at the part that failed,
and `pointer(text, start, end)` draws that pointer.
"""
from __future__ import annotations

import ast
import difflib
import keyword
import math
import numbers
import re
import unicodedata
import warnings
from typing import Mapping, Optional, Union

from .engine import OPS, Value, apply

__all__ = ["parse", "ExprError", "FUNCTIONS", "CONSTANTS", "MAX_LENGTH", "MAX_NODES",
           "MAX_DEPTH", "MAX_EXPONENT", "check_variable_name", "parse_number", "pointer",
           "shorten", "ascii_hint"]

MAX_LENGTH = 2000     # characters of expression text
MAX_NODES = 500       # numbers, names, operations and calls in the expression
MAX_DEPTH = 200       # operations nested inside one another (a flat a+b+c+... is one level)
MAX_EXPONENT = 10_000  # |exponent| of any power, checked on its value before computing

class _Functions(Mapping):
    """The functions an expression may call, each with one argument: every one-input operation
    of the engine's live table (`neg` is written `-x`), so an operation added to the table, or
    with define_op, can be called in an expression at once."""

    _SPELLED = frozenset({"neg"})  # has its own notation

    def __getitem__(self, name: str):
        op = OPS.get(name) if isinstance(name, str) else None
        if op is None or op.arity != 1 or name in self._SPELLED or not name.isidentifier():
            raise KeyError(name)
        return op

    def __iter__(self):
        return (n for n, op in list(OPS.items())
                if op.arity == 1 and n not in self._SPELLED and n.isidentifier())

    def __len__(self) -> int:
        return sum(1 for _ in self)


FUNCTIONS: Mapping = _Functions()

# Names that are numbers unless a variable of that name is given.
CONSTANTS: dict = {"pi": math.pi, "e": math.e}

# Function names people bring from paper and other tools, and the name to write here.
_ALIASES = {"ln": "log", "arcsin": None, "max": None, "min": None, "sqr": "sqrt",
            "sgn": None, "sign": None, "tan": None, "logistic": "sigmoid", "ReLU": "relu",
            "Relu": "relu", "expo": "exp"}

# Non-ASCII characters people paste from documents, and what to write instead.
_ASCII_FOR = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-",
    "\u00d7": "*", "\u22c5": "*", "\u00b7": "*", "\u2219": "*", "\u2217": "*",
    "\u00f7": "/", "\u2044": "/", "\u2215": "/",
    "\u00b2": "**2", "\u00b3": "**3", "\u00b9": "**1", "\u2070": "**0", "\u2074": "**4",
    "\u2075": "**5", "\u2076": "**6", "\u2077": "**7", "\u2078": "**8", "\u2079": "**9",
    "\u207b": "**-", "\u03c0": "pi", "\u221a": "sqrt(...)", "\u00a0": "a plain space",
    "\u2009": "a plain space", "\u202f": "a plain space", "\u2002": "a plain space",
    "\u2003": "a plain space", "\u2032": "nothing (no primes: use a name such as x2)",
    "\uff0b": "+", "\uff0d": "-", "\uff0a": "*", "\uff0f": "/", "\uff08": "(", "\uff09": ")",
}

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_OTHER_BINOPS = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<",
                 ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&"}

# Friendly names for the node kinds people are most likely to type by mistake or on purpose.
_REFUSED = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts (x[...]) are not allowed",
    ast.Lambda: "lambda functions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions (generator expressions) are not allowed",
    ast.JoinedStr: "strings (f-strings) are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "'and' / 'or' are not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed",
    ast.Tuple: "tuples (a comma outside a function call) are not allowed",
    ast.List: "lists are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Set: "sets are not allowed",
    ast.Starred: "starred arguments (*x) are not allowed",
    ast.NamedExpr: "assignments (:=) are not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield from' is not allowed",
    ast.Slice: "slices are not allowed",
}

_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# a number written straight before a name or a parenthesis, as on paper: 2x, 3(a+b), 0.5sin(x)
_JUXTAPOSED_RE = re.compile(r"(?<![A-Za-z0-9_.])((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                            r"(?:[eE][+-]?[0-9]+)?)(?=[A-Za-z_(])")
# a name followed by a space and an operand: sin x, ln x, a b
_SPACED_RE = re.compile(r"(?<![A-Za-z0-9_.])([A-Za-z_][A-Za-z0-9_]*) +(?=[A-Za-z0-9_.])")
_SAME_LEVEL = ({ast.Add, ast.Sub}, {ast.Mult, ast.Div})  # chains of these do not nest


def shorten(text: str, limit: int = 60, quote: bool = False) -> str:
    """`text` for an error message (its repr with quote=True): as is when short, else its
    start, '...' and its length, so a 100,000-character argument does not fill the terminal."""
    if len(text) <= limit:
        return repr(text) if quote else text
    head = repr(text[:limit - 20]) if quote else text[:limit - 20]
    return f"{head}... ({len(text):,} characters)"


def _char_name(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    try:
        return f"{code} {unicodedata.name(ch)}"
    except ValueError:
        return code


def ascii_hint(text: str) -> Optional[tuple]:
    """(column, message) for the first character of `text` outside printable ASCII, naming it
    (U+2212 MINUS SIGN) and, for the ones people paste from documents, its ASCII form; None
    when the text is all printable ASCII."""
    for i, ch in enumerate(text):
        if " " <= ch <= "~":
            continue
        instead = _ASCII_FOR.get(ch)
        if instead is not None:
            shown = instead if instead.startswith(("a ", "nothing")) else f"{instead} (ASCII)"
            return i, f"character {ch!r} is not allowed ({_char_name(ch)}): write {shown} instead"
        return i, (f"character {ch!r} is not allowed ({_char_name(ch)}): expressions are one "
                   "line of ASCII text")
    return None


def _did_you_mean(name: str) -> str:
    """' (did you mean log?)' for a close function name, else ''."""
    alias = _ALIASES.get(name, "")
    if alias:
        return f" (did you mean {alias}?)"
    if alias is None:  # a known function of other tools that is not here
        return ""
    close = difflib.get_close_matches(name, list(FUNCTIONS), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


class ExprError(ValueError):
    """An expression that is not accepted: bad syntax, a refused construct or a limit passed.

    `reason` is the one-line explanation, `text` the expression and `start`/`end` the columns
    (0-based, end exclusive) of the offending part, or None when the whole text is at fault.
    str(error) is the reason followed by the text and a caret line under that part.
    """

    def __init__(self, reason: str, text: str = "", start: Optional[int] = None,
                 end: Optional[int] = None):
        if start is not None and (end is None or end <= start):
            end = start + 1
        self.reason, self.text, self.start, self.end = reason, text, start, end
        msg = reason
        if text and start is not None:
            msg += "\n" + pointer(text, start, end)
        super().__init__(msg)


def pointer(text: str, start: int, end: Optional[int] = None, indent: str = "  ",
            width: int = 76) -> str:
    """Two lines: the text (a window of it when long) and carets under columns [start, end)."""
    start = max(0, min(start, len(text)))
    end = start + 1 if end is None or end <= start else min(end, max(len(text), start + 1))
    lo, hi, pre, post = 0, len(text), "", ""
    if len(text) > width:  # show a window around the offending part
        span = min(end - start, width - 20)
        lo = max(0, start - (width - span) // 2)
        hi = min(len(text), lo + width)
        lo = max(0, hi - width)
        end = min(end, hi)
        pre = "..." if lo > 0 else ""
        post = "..." if hi < len(text) else ""
    visible = "".join(c if " " <= c <= "~" else "?" for c in text[lo:hi])  # one column each
    shown = pre + visible + post
    carets = " " * (len(pre) + start - lo) + "^" * max(1, end - start)
    return f"{indent}{shown}\n{indent}{carets}"


def check_variable_name(name: str) -> str:
    """Return `name` if it can be a variable of an expression, else raise ExprError saying why.

    Names are ASCII identifiers that are neither Python keywords nor function names.
    """
    if not isinstance(name, str):
        raise ExprError(f"a variable name must be a string, got {type(name).__name__}: "
                        f"{shorten(repr(name))}")
    if not _NAME_RE.match(name):
        hint = ascii_hint(name)
        raise ExprError(f"{shorten(name, quote=True)} is not a valid variable name: use "
                        "letters, digits and _ (ASCII), not starting with a digit"
                        + (f"; {hint[1]}" if hint else ""))
    if keyword.iskeyword(name) or name in ("True", "False", "None"):
        raise ExprError(f"{name!r} is a Python keyword and cannot be a variable name")
    if name in FUNCTIONS:
        raise ExprError(f"{name!r} is a function name and cannot be a variable name")
    return name


def parse_number(text: str, what: str = "value") -> float:
    """A decimal number such as 2, -0.5 or 1e-3 as a finite float, else ExprError.

    Stricter than float(): no 'nan', 'inf', underscores, spaces or non-ASCII digits.
    """
    if not isinstance(text, str) or not _NUMBER_RE.match(text):
        shown = shorten(text, quote=True) if isinstance(text, str) else repr(text)
        hint = ascii_hint(text) if isinstance(text, str) else None
        raise ExprError(f"{what} {shown} is not a number (expected a decimal number such as "
                        "2, -0.5 or 1e-3)" + (f"; {hint[1]}" if hint else ""))
    x = float(text)
    if not math.isfinite(x):
        raise ExprError(f"{what} {shorten(text, quote=True)} is too large: it is not a finite "
                        "float")
    return x


MAX_LABEL = 40  # characters of a sub-expression used as a node's label


def _label_text(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 3] + "..."


def _exact(x: float) -> str:
    """A number as typed: whole numbers without '.0', others in shortest round-trip form (a
    message about 10000.0000001 must not say 10000)."""
    return str(int(x)) if math.isfinite(x) and x == int(x) and abs(x) < 1e16 else repr(x)


def _span(node: ast.AST, shift: int) -> tuple:
    """The 0-based [start, end) columns of a node in the original text (one line, ASCII)."""
    start = getattr(node, "col_offset", 0) + shift
    end = getattr(node, "end_col_offset", None)
    return start, (end + shift if end is not None else start + 1)


class _Builder:
    """Turns a whitelisted AST into engine Values, without recursion."""

    def __init__(self, text: str, shift: int, leaves: dict, label_nodes: bool = False):
        self.text, self.shift, self.leaves = text, shift, leaves
        self.label_nodes = label_nodes

    def fail(self, reason: str, node: Optional[ast.AST] = None, span: Optional[tuple] = None):
        if span is None and node is not None:
            span = _span(node, self.shift)
        start, end = span if span is not None else (None, None)
        raise ExprError(reason, self.text, start, end)

    def op_span(self, node: ast.BinOp, symbol: str) -> tuple:
        """Columns of a binary operator's symbol (between its operands), for pointing at it."""
        a = node.left.end_col_offset + self.shift
        b = node.right.col_offset + self.shift
        i = self.text.find(symbol, a, b)
        return (i, i + len(symbol)) if i >= 0 else _span(node, self.shift)

    # -- checking: every node is looked at before anything is computed -------------------------
    def check(self, tree: ast.Expression) -> None:
        """Every node allowed, at most MAX_NODES of them, at most MAX_DEPTH operations nested.

        The depth of an operation is the number of operations it sits inside, itself included;
        numbers and names add nothing. The left operand of + or - that is itself a + or - (and
        the same for * and /) stays at its parent's depth: a+b+c+d is a flat chain, not four
        levels, and nothing here recurses along it.
        """
        count = 0
        stack = [(tree.body, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > MAX_NODES:
                self.fail(f"expression is too large: more than {MAX_NODES} numbers, names and "
                          "operations")
            kids = self.children(node)
            if kids and depth > MAX_DEPTH:
                self.fail(f"expression is nested too deeply: a chain of more than {MAX_DEPTH} "
                          "operations, each an operand of the next", node)
            for child in reversed(kids):  # leftmost problem reported first
                stack.append((child, depth + (0 if self.same_level(node, child) else 1)))

    @staticmethod
    def same_level(node: ast.AST, child: ast.AST) -> bool:
        """True when `child` continues `node`'s flat chain (the left operand of a + b - c)."""
        if type(node) is not ast.BinOp or type(child) is not ast.BinOp or child is not node.left:
            return False
        return any(type(node.op) in g and type(child.op) in g for g in _SAME_LEVEL)

    def children(self, node: ast.AST) -> list:
        """The operands of an allowed node; raises ExprError for anything not allowed."""
        t = type(node)
        if t is ast.BinOp:
            if type(node.op) not in _BINOPS:
                sym = _OTHER_BINOPS.get(type(node.op), type(node.op).__name__)
                self.fail(f"the operator {sym} is not supported (use + - * / **)",
                          span=self.op_span(node, sym))
            return [node.left, node.right]
        if t is ast.UnaryOp:
            if type(node.op) not in (ast.USub, ast.UAdd):
                sym = {ast.Not: "not", ast.Invert: "~"}.get(type(node.op), "?")
                self.fail(f"the operator {sym} is not supported (only unary minus and plus)",
                          node)
            return [node.operand]
        if t is ast.Constant:
            self.number(node)
            return []
        if t is ast.Name:
            self.leaf(node)
            return []
        if t is ast.Call:
            self.function(node)
            return [node.args[0]]
        if t is ast.Attribute:
            self.fail(f"attribute access (.{node.attr}) is not allowed", node)
        self.fail(_REFUSED.get(t, f"this kind of expression ({t.__name__}) is not allowed"),
                  node)

    def number(self, node: ast.Constant) -> float:
        v = node.value
        if isinstance(v, bool) or v is None or v is Ellipsis:
            self.fail(f"{v!r} is not allowed: use a number", node)
        if isinstance(v, (str, bytes)):
            self.fail("strings are not allowed: use numbers and the variables given", node)
        if isinstance(v, complex):
            self.fail("complex numbers are not allowed", node)
        if not isinstance(v, (int, float)):  # pragma: no cover - ast has no other constants
            self.fail(f"{type(v).__name__} constants are not allowed", node)
        try:
            x = float(v)  # never any integer arithmetic: a literal is a float at once
        except OverflowError:
            x = math.inf
        if not math.isfinite(x):
            self.fail("number is too large: it is not a finite float", node)
        return x

    def leaf(self, node: ast.Name) -> Value:
        v = self.leaves.get(node.id)
        if v is None:
            if node.id in CONSTANTS:
                v = Value.constant(CONSTANTS[node.id])
                if self.label_nodes:
                    v.label = node.id
                return v
            if node.id in FUNCTIONS:
                self.fail(f"{node.id!r} is a function: call it as {node.id}(...)", node)
            given = ", ".join(sorted(self.leaves)) or "none"
            self.fail(f"unknown variable {node.id!r} (variables given: {given})", node)
        return v

    def function(self, node: ast.Call) -> None:
        f = node.func
        if type(f) is not ast.Name:
            if type(f) is ast.Attribute:
                self.fail(f"attribute access (.{f.attr}) is not allowed", f)
            if type(f) is ast.Constant and isinstance(f.value, (int, float)):
                num = self.text[slice(*_span(f, self.shift))]
                self.fail(f"a number directly before '(': write {num}*(...) to multiply", f)
            if type(f) in (ast.BinOp, ast.UnaryOp, ast.Call):
                self.fail("two parenthesised parts side by side: write (...)*(...) to "
                          "multiply (only the functions " + ", ".join(FUNCTIONS) +
                          " can be called)", f)
            self.fail("only the functions " + ", ".join(FUNCTIONS) + " can be called", f)
        if f.id not in FUNCTIONS:
            if f.id in self.leaves or f.id in CONSTANTS:
                what = "variable" if f.id in self.leaves else "constant"
                self.fail(f"{f.id!r} is a {what}, not a function (a missing operator? "
                          f"write {f.id}*(...) to multiply)", f)
            self.fail(f"unknown function {f.id!r}{_did_you_mean(f.id)} (known: "
                      f"{', '.join(FUNCTIONS)})", f)
        if node.keywords:
            k = node.keywords[0]
            self.fail(f"keyword arguments are not allowed: {f.id}() takes one positional "
                      "argument", k)
        for a in node.args:
            if type(a) is ast.Starred:
                self.fail("starred arguments (*x) are not allowed", a)
        if len(node.args) != 1:
            self.fail(f"{f.id}() takes exactly one argument, got {len(node.args)}", node)

    # -- building: post-order over an explicit stack ------------------------------------------
    def build(self, tree: ast.Expression) -> Value:
        out: list = []
        stack: list = [(tree.body, False)]
        while stack:
            node, ready = stack.pop()
            t = type(node)
            if t is ast.Constant:
                out.append(self.named(Value.constant(self.number(node)), node))
                continue
            if t is ast.Name:
                out.append(self.leaf(node))
                continue
            if t is ast.UnaryOp and type(node.operand) is ast.Constant:
                x = self.number(node.operand)  # -2 is the number -2, not neg(2)
                out.append(self.named(Value.constant(-x if type(node.op) is ast.USub else x),
                                      node))
                continue
            if not ready:
                stack.append((node, True))
                for child in reversed(self.children(node)):
                    stack.append((child, False))
                continue
            try:
                if t is ast.BinOp:
                    b = out.pop()
                    a = out.pop()
                    if type(node.op) is ast.Pow and not abs(b.data) <= MAX_EXPONENT:
                        self.fail(f"exponent {_exact(b.data)} is too large: |exponent| must be "
                                  f"at most {MAX_EXPONENT}", node.right)
                    out.append(self.named(self.binary(node.op, a, b), node))
                elif t is ast.UnaryOp:
                    a = out.pop()
                    out.append(self.named(-a, node) if type(node.op) is ast.USub else a)
                else:  # a checked call
                    out.append(self.named(apply(FUNCTIONS[node.func.id], out.pop()), node))
            except ExprError:
                raise
            except (ArithmeticError, ValueError) as e:  # the engine's math errors, located
                e.expr_text, e.expr_span = self.text, _span(node, self.shift)
                raise
        (root,) = out
        return root

    def named(self, v: Value, node: ast.AST) -> Value:
        """With label_nodes, label a new node with its sub-expression's text (cut when long)."""
        if self.label_nodes:
            v.label = _label_text(self.text[slice(*_span(node, self.shift))])
        return v

    @staticmethod
    def binary(op: ast.operator, a: Value, b: Value) -> Value:
        t = type(op)
        if t is ast.Add:
            return a + b
        if t is ast.Sub:
            return a - b
        if t is ast.Mult:
            return a * b
        if t is ast.Div:
            return a / b
        return a ** b


def parse(text: str, variables: Optional[Mapping[str, Union[float, int, Value]]] = None, *,
          label_nodes: bool = False) -> Value:
    """Build the graph of an expression such as "(a+b)*(b+1)" from engine Values.

    `variables` maps each name the expression may use to a number or a Value. Numbers become
    new leaves labelled with their name; pass Values (e.g. `Value(2.0, label="a")`) to read
    their `.grad` after `root.backward()`. Numbers in the text become constant leaves; `pi`
    and `e` are constants too unless `variables` has that name.

    `label_nodes=True` labels every node the parser creates with its sub-expression's text
    (`a+b`, `(a+b)*(b+1)`, the constant `2`), so tables and pictures name them as written;
    the variables' Values keep their own labels.

    Raises ExprError (a ValueError) for anything not accepted, with a pointer at the offending
    part; the engine's ValueError/ZeroDivisionError/OverflowError for math errors.
    """
    if not isinstance(text, str):
        raise ExprError(f"the expression must be a string, got {type(text).__name__}: {text!r}")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression is too long: {len(text)} characters (limit {MAX_LENGTH})")
    if variables is None:
        variables = {}
    if not isinstance(variables, Mapping):
        raise ExprError("variables must be a mapping from each name in the expression to a "
                        "number or a Value, e.g. {'x': 2.0}; got "
                        f"{type(variables).__name__}: {shorten(repr(variables))}")
    leaves: dict = {}
    for name, v in variables.items():
        check_variable_name(name)
        if not isinstance(v, Value):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ExprError(f"variable {name!r} needs a number or a Value, got "
                                f"{type(v).__name__}: {shorten(repr(v))}")
            x = float(v)
            if not math.isfinite(x):
                raise ExprError(f"variable {name!r} needs a finite number, got {v!r}")
            v = Value(x, label=name)
        leaves[name] = v
    bad = ascii_hint(text)
    if bad is not None:
        raise ExprError(bad[1], text, bad[0])
    body = text.lstrip(" ")
    if not body.strip():
        raise ExprError("the expression is empty")
    shift = len(text) - len(body)
    try:
        with warnings.catch_warnings():  # e.g. "'int' object is not callable" SyntaxWarning
            warnings.simplefilter("ignore")
            tree = ast.parse(body, mode="eval")
    except SyntaxError as e:
        start = (e.offset or 1) - 1 + shift  # one line of ASCII: offsets are columns
        end = getattr(e, "end_offset", None)
        end = end - 1 + shift if end and e.offset and end > e.offset else None
        hint = _syntax_hint(text)
        if hint is not None:
            raise ExprError(*hint) from None
        raise ExprError(f"syntax error: {e.msg}", text, start, end) from None
    except (RecursionError, MemoryError):
        raise ExprError(f"expression is nested too deeply (limit {MAX_DEPTH})") from None
    except (ValueError, OverflowError) as e:  # pragma: no cover - screened by the checks above
        raise ExprError(f"cannot parse the expression: {e}") from None
    builder = _Builder(text, shift, leaves, label_nodes)
    builder.check(tree)
    return builder.build(tree)


def _syntax_hint(text: str) -> Optional[tuple]:
    """(reason, text, start, end) for the paper habits behind a syntax error, else None:
    `2x` (a number straight before a name) and `sin x` (a function without parentheses)."""
    m = _JUXTAPOSED_RE.search(text)
    if m:
        num, rest = m.group(1), text[m.end():]
        name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", rest)
        if name:
            return (f"a number directly before a name: write {num}*{name.group()} to multiply",
                    text, m.start(), m.end() + name.end())
    for m in _SPACED_RE.finditer(text):
        name = m.group(1)
        if keyword.iskeyword(name):
            continue
        arg = re.match(r"[A-Za-z0-9_.]+", text[m.end():]).group()
        if keyword.iskeyword(arg):
            continue
        end = m.end() + len(arg)
        fn = name if name in FUNCTIONS else _ALIASES.get(name)
        if fn:
            alias = f" ({name} is called {fn} here)" if fn != name else ""
            return f"a function needs parentheses: write {fn}({arg}){alias}", text, m.start(), end
        why = (f"two operands side by side: write {name}*{arg} to multiply (or put the operator "
               "you meant between them)")
        return why, text, m.start(), end
    return None
