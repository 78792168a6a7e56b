"""Neural networks built from Values: Neuron, Layer, MLP, with PyTorch's Module habits.

A Neuron is the lecture's picture: one weighted sum node Σ(w_i·x_i, b) followed by an
activation. Every node a model creates carries a dotted label (`L0.N3.w1`, `L0.N3.z`,
`L0.N3.a`, ...) so a drawn graph can be grouped by layer and neuron. Models save to JSON
(architecture + parameters, written atomically) and load back with every field validated
before a single parameter changes.
"""
from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import random
import stat
from collections.abc import Set as AbstractSet
from functools import partial
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from .engine import MUL, OPS, Value, binary, unary
from .files import write_atomic

__all__ = ["Module", "Neuron", "Layer", "MLP", "ModelFileError", "ACTIVATIONS", "MAX_FILE_BYTES"]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
FORMAT = "tinygrad_scalar.module"
VERSION = 1

Seed = Union[int, random.Random, None]
Input = Union[float, int, Value, Sequence[Union[float, int, Value]]]

# The hot path calls the engine's public node builders (inputs are already Values there),
# which skips one Python frame per product and per activation; one sum node per neuron.
_mul = partial(binary, MUL)
_ACT = {name: partial(unary, OPS[name]) for name in ("relu", "tanh", "sigmoid")}


class ModelFileError(ValueError):
    """A saved model (or state dict) that cannot be loaded: corrupt, wrong or incomplete."""


def _rng(seed: Seed, rng: Optional[random.Random]) -> random.Random:
    """One random.Random from either `seed=` (int or Random) or `rng=`; with neither, Python's
    global generator (the one random.seed() seeds), as micrograd draws its weights."""
    if rng is not None and seed is not None:
        raise TypeError("pass either seed= or rng=, not both")
    if rng is None:
        rng = seed
    if isinstance(rng, random.Random):
        return rng
    if rng is None:  # Python's global generator, as micrograd: random.seed(1337) reproduces
        return random.uniform.__self__
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"seed must be an int or a random.Random, "
                        f"got {type(rng).__name__}: {rng!r}")
    return random.Random(int(rng))


def _activation(activation: Union[str, bool, None], nonlin: Optional[bool]) -> str:
    """The activation from ours (`activation='tanh'`) or micrograd's spelling (`nonlin=True`
    is relu, False linear; also as the second positional argument, as micrograd allows)."""
    if isinstance(activation, bool):
        if nonlin is not None:
            raise TypeError("pass nonlin once (as the second argument or as nonlin=)")
        activation, nonlin = None, activation
    if nonlin is not None:
        if activation is not None:
            raise TypeError(f"pass either activation= or micrograd's nonlin=, not both "
                            f"(got activation={activation!r}, nonlin={nonlin!r})")
        if not isinstance(nonlin, bool):
            raise TypeError(f"nonlin must be True (relu) or False (linear), got {nonlin!r}")
        return "relu" if nonlin else "linear"
    return _check_activation("relu" if activation is None else activation)


def _check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


def _check_count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")
    return int(n)


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}: {name!r}")
    return name


def _ints(args: dict, *keys: str) -> Optional[list]:
    """args[k] for each key when every one is a positive int, else None."""
    vals = [args.get(k) for k in keys]
    ok = all(type(v) is int and v >= 1 for v in vals)
    return vals if ok else None


def _short(x: Any, limit: int = 120) -> str:
    r = repr(x)
    return r if len(r) <= limit else r[:limit] + "..."


def _who(who: Any) -> str:
    return who if isinstance(who, str) else repr(who)


def _as_inputs(x: Input, nin: int, who: Any) -> list:
    """The model's input as a list of Values: numbers become leaves labelled x0, x1, ...

    `who` (a name or the module itself) is only formatted into error messages.
    """
    if isinstance(x, (Value, numbers.Real)):
        x = (x,)
    elif isinstance(x, (str, bytes)):
        raise TypeError(f"{_who(who)} needs a sequence of {nin} numbers or Values, "
                        f"got {type(x).__name__}: {x!r}")
    elif isinstance(x, (Mapping, AbstractSet)):
        # a dict would run on its keys, a set in an arbitrary order: never what was meant
        kind = "a mapping" if isinstance(x, Mapping) else "a set (no order)"
        fix = "list(d.values()) in input order" if isinstance(x, Mapping) else "a list"
        raise TypeError(f"{_who(who)} needs an ordered sequence of {nin} numbers or Values, got "
                        f"{kind}, {type(x).__name__}: {_short(x)}; pass {fix}")
    elif getattr(x, "ndim", None) == 0:  # a 0-d array: a number in a box, with no len()
        raise TypeError(f"{_who(who)} needs a sequence of {nin} numbers or Values, got a 0-d "
                        f"{type(x).__name__}: {_short(x)}; pass [x.item()] (or x.item() "
                        f"for one input)")
    elif not hasattr(x, "__len__"):
        try:
            x = list(x)
        except TypeError:
            raise TypeError(f"{_who(who)} needs a sequence of {nin} numbers or Values, "
                            f"got {type(x).__name__}: {x!r}") from None
    try:
        n = len(x)
    except TypeError:
        raise TypeError(f"{_who(who)} needs a sequence of {nin} numbers or Values, "
                        f"got {type(x).__name__}: {_short(x)}") from None
    if n != nin:
        raise ValueError(f"{_who(who)} expects {nin} input(s), got {n}: {_short(x)}")
    out = []
    for i, xi in enumerate(x):
        if not isinstance(xi, Value):
            if not isinstance(xi, numbers.Real):
                raise TypeError(f"{_who(who)}: input {i} must be a number or a Value, "
                                f"got {type(xi).__name__}: {xi!r}")
            v = Value(xi)
            v.label = f"x{i}"
            xi = v
        out.append(xi)
    return out


MAX_FILE_BYTES = 64 * 2 ** 20
"""The largest model file `Cls.load(path)` reads (64 MiB, about a million parameters as this
library writes them); `model.load(path)` allows what a file for that model can take. A module
attribute: set `nn.MAX_FILE_BYTES` to load larger models."""

_HEADER_BYTES = 64 * 2 ** 10  # format, version, architecture and indentation, generously
_BYTES_PER_PARAMETER = 128  # beyond the quoted name: a long number, separators, indentation
_MAX_INT_DIGITS = 4300  # CPython's own limit for converting a string to int


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _read_model_text(path: str, owner: Optional["Module"]) -> tuple[str, int]:
    """The text of a regular file of bounded size, read without blocking on a FIFO and
    without reading more than the bound even when the file grows meanwhile."""
    limit = MAX_FILE_BYTES if owner is None else owner._file_bound()
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"no saved model at {path!r}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{path}: is {_kind(st.st_mode)}, not a saved model (a regular "
                                 f"file); nothing was read")
        data = b""
        if st.st_size <= limit:  # refused unread when too large; bounded even if it grows
            with os.fdopen(fd, "rb") as f:
                fd = -1
                data = f.read(limit + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if st.st_size > limit or len(data) > limit:
        size = max(len(data), st.st_size)
        if owner is not None:
            owner._check_size(path, size)
        raise ModelFileError(f"{path}: the file is {size:,} bytes, more than any model file "
                             f"this library reads (nn.MAX_FILE_BYTES = {limit:,})")
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{path}: not a saved model (corrupt JSON: {e})") from None


def _constructor_config(cls: type, args: tuple, kwargs: dict) -> tuple[dict, str]:
    """(the arguments `cls(*args, **kwargs)` binds, as JSON values; what makes that impossible,
    or ''). Defaults are filled in, so a file keeps the architecture if a default changes."""
    try:
        sig = inspect.signature(cls.__init__)
        bound = sig.bind(None, *args, **kwargs)
    except (TypeError, ValueError) as e:
        return {}, f"its arguments could not be recorded ({e})"
    bound.apply_defaults()
    cfg: dict = {}
    bad = []
    for name, value in list(bound.arguments.items())[1:]:  # [0] is self
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                bad.append(f"*{name}")
            continue
        items = value.items() if kind is inspect.Parameter.VAR_KEYWORD else [(name, value)]
        for key, v in items:
            if key in ("seed", "rng"):
                continue
            try:
                cfg[key] = json.loads(json.dumps(v, allow_nan=False))
            except (TypeError, ValueError):
                bad.append(key)
    if bad:
        return cfg, (f"constructor argument(s) {', '.join(bad)} are not JSON values (numbers, "
                     f"strings, lists, dicts)")
    return cfg, ""


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included: 2 and 2.0 and true differ (Python's == would
    say 2 == 2.0 == True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same_json, a, b))
    return a == b


class _Load:
    """`Cls.load(path)` builds a new model; `model.load(path)` fills an existing one."""

    def __get__(self, obj, cls):
        return cls._load_new if obj is None else obj._load_into


class Module:
    """Base class: parameters, gradients and saving, as in torch.nn.Module.

    A subclass only has to keep its parts as attributes, as in PyTorch: Values, other Modules,
    and lists, tuples or string-keyed dicts of them (`self.l1 = Layer(2, 8)`,
    `self.blocks = [Layer(8, 8) for _ in range(3)]`, `self.scale = Value(1.0)`). They are found
    in the order the attributes were first assigned and named by their path (`l1.N0.w0`,
    `blocks.2.N7.b`, `scale`); a part reachable twice counts once. Only leaf Values are
    parameters: a computed node kept as an attribute (a cached output) is not.

    Saving needs the constructor arguments that rebuild the model. The ones a subclass was
    called with are recorded automatically (leaving out `seed` and `rng`, which do not change
    the architecture) when they are JSON values; otherwise implement `_config()`.
    """

    _registry: dict = {}
    _registry_key = "Module"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Module":
        self = super().__new__(cls)
        if cls._config is Module._config:  # the class does not describe itself: remember how
            self.__config = _constructor_config(cls, args, kwargs)  # it was built, for save()
        return self

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # this module's classes save under their short names ('MLP'); a subclass defined
        # elsewhere under its full name, so a user's own `class MLP(Module)` (micrograd's
        # spelling) neither replaces nor is mistaken for this one when a file is loaded
        key = cls.__name__
        if cls.__module__ != __name__:
            key = f"{cls.__module__}.{cls.__qualname__}"
        cls._registry_key = key
        Module._registry[key] = cls

    # -- parameters ------------------------------------------------------------------------
    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        """(name, Value) for every parameter, in a fixed order: by default every leaf Value
        found in this module's attributes (see the class docstring)."""
        seen: set = set()
        for name, p in self._found(self, "", {id(self)}):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _found(self, obj: Any, prefix: str, visited: set) -> Iterator[tuple[str, Value]]:
        """Walk attributes, containers and submodules; `visited` breaks reference cycles."""
        if isinstance(obj, Value):
            if obj.is_leaf and not obj.is_constant:
                yield prefix.rstrip("."), obj
            return
        if isinstance(obj, Module) and obj is not self:
            if id(obj) in visited:
                return
            visited.add(id(obj))
            if type(obj).named_parameters is not Module.named_parameters:
                for name, p in obj.named_parameters():  # a module that names its own parts
                    yield prefix + name, p
                return
            yield from obj._found(obj, prefix, visited)
            return
        if obj is self or isinstance(obj, Module):
            for attr, value in vars(obj).items():
                if not attr.startswith("_Module__"):
                    yield from self._found(value, f"{prefix}{attr}.", visited)
        elif isinstance(obj, (list, tuple)):
            for i, value in enumerate(obj):
                yield from self._found(value, f"{prefix}{i}.", visited)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                if isinstance(key, str):
                    yield from self._found(value, f"{prefix}{key}.", visited)

    def parameters(self) -> list[Value]:
        """Every parameter, in the order of named_parameters()."""
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(1 for _ in self.named_parameters())

    def zero_grad(self) -> None:
        """Zero every parameter's gradient (leaves accumulate across backward calls)."""
        for p in self.parameters():
            p.grad = 0.0
            p._gv = None

    def _config(self) -> dict:
        """The constructor arguments that rebuild this model, as JSON values."""
        recorded = self.__dict__.get("_Module__config")
        problem = "" if recorded is None else recorded[1]
        if recorded is None or problem:
            raise NotImplementedError(
                f"{type(self).__name__} cannot be saved: "
                + (f"{problem}; " if problem else "")
                + "a Module subclass implements _config(), the constructor arguments that "
                  "rebuild it (as a dict of JSON values)")
        return dict(recorded[0])

    def architecture(self) -> dict:
        """The class name and constructor arguments: what a saved file must match."""
        return {"class": type(self)._registry_key, "args": self._config()}

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, float]:
        """Parameter name -> value (floats, a copy: changing it does not change the model)."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Set every parameter from `state`; everything is checked before anything changes.

        The names must be exactly this model's names and every value a finite real number;
        otherwise ModelFileError says what is wrong and the model is left as it was.
        """
        self._assign(state, "state dict")

    def _assign(self, state: Any, source: str) -> None:
        values = self._validated(state, source)  # raises before any parameter changes
        for (_, p), v in zip(self.named_parameters(), values):
            p.data = v

    def _validated(self, state: Any, source: str) -> list[float]:
        if not isinstance(state, Mapping):
            raise ModelFileError(f"{source}: parameters must be a mapping of name -> number, "
                                 f"got {type(state).__name__}")
        names = [name for name, _ in self.named_parameters()]
        if len(state) != len(names):
            raise ModelFileError(f"{source}: has {len(state)} parameters, this "
                                 f"{type(self).__name__} has {len(names)}")
        missing = [n for n in names if n not in state]
        if missing:
            extra = [k for k in state if k not in set(names)]
            raise ModelFileError(f"{source}: missing parameter(s) {missing[:5]}"
                                 + (f", unexpected {extra[:5]!r}" if extra else ""))
        values = []
        for n in names:
            v = state[n]
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ModelFileError(f"{source}: parameter {n!r} must be a number, "
                                     f"got {type(v).__name__}: {v!r}")
            try:
                v = float(v)
            except OverflowError:  # an int too large for a float
                raise ModelFileError(f"{source}: parameter {n!r} is an integer of "
                                     f"{len(str(v))} digits, too large for a float") from None
            if not math.isfinite(v):
                raise ModelFileError(f"{source}: parameter {n!r} must be finite, got {v!r}")
            values.append(v)
        return values

    # -- files -----------------------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write architecture and parameters as JSON, atomically (temp file, then rename)."""
        params = {}
        for name, p in self.named_parameters():
            if not math.isfinite(p.data):
                raise ValueError(f"cannot save: parameter {name!r} is {p.data!r} (not finite)")
            params[name] = p.data
        doc = {"format": FORMAT, "version": VERSION, "architecture": self.architecture(),
               "parameters": params}
        text = json.dumps(doc, indent=1, allow_nan=False)
        write_atomic(path, text)

    load = _Load()

    @staticmethod
    def _read(path: Union[str, os.PathLike],
              owner: Optional["Module"] = None) -> tuple[str, dict, int]:
        """(path, the saved document with its outer structure checked, its size in bytes).

        Only a regular file is read: a device (/dev/zero), a FIFO or a folder is refused before
        a byte is read, and so is a file larger than MAX_FILE_BYTES, or than a file saved for
        `owner` (the model being filled) can be.
        """
        path = os.fspath(path)
        text, nbytes = _read_model_text(path, owner)

        def no_constants(name):
            raise ModelFileError(f"{path}: {name} is not a number a model can hold")

        def no_duplicates(pairs):
            d = {}
            for k, v in pairs:
                if k in d:
                    raise ModelFileError(f"{path}: key {k!r} appears twice")
                d[k] = v
            return d

        def bounded_int(digits):
            if len(digits) > _MAX_INT_DIGITS:  # Python refuses int() of such strings anyway
                raise ModelFileError(f"{path}: an integer of {len(digits.lstrip('-'))} digits "
                                     f"is not a number a model can hold (too large for a float)")
            return int(digits)

        try:
            doc = json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates,
                             parse_int=bounded_int)
        except json.JSONDecodeError as e:
            raise ModelFileError(f"{path}: not a saved model (corrupt JSON: {e})") from None
        except RecursionError:
            raise ModelFileError(f"{path}: not a saved model (JSON nested too deeply)") from None
        except ModelFileError:
            raise
        except ValueError as e:  # anything else the decoder refuses is a corrupt file too
            raise ModelFileError(f"{path}: not a saved model ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a saved tinygrad_scalar model "
                                 f"(format tag {FORMAT!r} missing)")
        if type(doc.get("version")) is not int or doc["version"] != VERSION:
            raise ModelFileError(f"{path}: format version {doc.get('version')!r}, "
                                 f"this library reads version {VERSION}")
        arch = doc.get("architecture")
        if (not isinstance(arch, dict) or not isinstance(arch.get("class"), str)
                or not isinstance(arch.get("args"), dict)):
            raise ModelFileError(f"{path}: architecture must be {{'class': ..., 'args': {{...}}}}, "
                                 f"got {arch!r}")
        if "parameters" not in doc:
            raise ModelFileError(f"{path}: no parameters")
        return path, doc, nbytes

    def _file_bound(self) -> int:
        """The most bytes a saved file of this model can sensibly take: generous room for the
        header and for every parameter's name and a number written with many digits."""
        return _HEADER_BYTES + sum(len(json.dumps(name)) + _BYTES_PER_PARAMETER
                                   for name, _ in self.named_parameters())

    def _check_size(self, path: str, size: int) -> None:
        bound = self._file_bound()
        if size > bound:
            raise ModelFileError(f"{path}: the file is {size:,} bytes, more than a saved "
                                 f"{type(self).__name__} of {self.num_parameters()} parameters "
                                 f"can take (at most {bound:,} bytes)")

    @classmethod
    def _load_new(cls, path: Union[str, os.PathLike]) -> "Module":
        """`MLP.load(path)` / `Module.load(path)`: a new model of the saved architecture.

        Raises FileNotFoundError for a missing file and ModelFileError (a ValueError) for a
        corrupt one, another format, an unknown or mismatched class, or bad parameters.
        """
        path, doc, nbytes = cls._read(path)
        arch = doc["architecture"]
        klass = Module._registry.get(arch["class"])
        if klass is None:
            raise ModelFileError(f"{path}: unknown model class {arch['class']!r}")
        if not issubclass(klass, cls):
            raise ModelFileError(f"{path}: holds a {arch['class']}, not a {cls.__name__}")
        params = doc["parameters"]
        if not isinstance(params, Mapping):
            raise ModelFileError(f"{path}: parameters must be a mapping of name -> number, "
                                 f"got {type(params).__name__}")
        count = klass._parameter_count(arch["args"])
        if count is not None and len(params) != count:
            # checked before building: a corrupt width must not allocate a huge model first
            raise ModelFileError(f"{path}: has {len(params)} parameters, the architecture "
                                 f"{arch!r} has {count}")
        try:
            model = klass(**arch["args"])
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: bad architecture {arch!r}: {e}") from None
        if not _same_json(model.architecture(), arch):  # an unknown argument such as a seed,
            # or one of another JSON type (2.0 or true for 2): the rule model.load follows too
            raise ModelFileError(f"{path}: bad architecture {arch!r}: a {klass.__name__} "
                                 f"saves {model.architecture()!r}")
        model._check_size(path, nbytes)
        model._assign(params, path)
        return model

    @classmethod
    def _parameter_count(cls, args: dict) -> Optional[int]:
        """How many parameters a model built from `args` has, computed without building it
        (None when unknown or when the arguments are malformed: the constructor says why)."""
        return None

    def _load_into(self, path: Union[str, os.PathLike]) -> "Module":
        """`model.load(path)`: this model's parameters from a file saved for the same
        architecture; on any error the parameters stay exactly as they were. Returns self."""
        path, doc, _ = self._read(path, owner=self)
        mine = self.architecture()
        if not _same_json(doc["architecture"], mine):
            raise ModelFileError(f"{path}: saved for {doc['architecture']}, this model is {mine}")
        self._assign(doc["parameters"], path)
        return self


def _init(rng: random.Random, nin: int) -> list[float]:
    u = rng.uniform
    return [u(-1.0, 1.0) for _ in range(nin)]


class Neuron(Module):
    """One neuron: a = activation(Σ(w_i·x_i, b)), the sum as ONE n-ary node.

    Weights start uniform in (-1, 1) (as in micrograd), the bias at 0; without `seed=` or
    `rng=` they come from Python's global `random`, so `random.seed(1337)` reproduces them.
    `activation` defaults to relu; micrograd's `nonlin=True/False` (relu/linear) works too.
    `name` prefixes the labels of everything the neuron makes: parameters `w0.., b`, sum `z`,
    output `a`.
    """

    def __init__(self, nin: int, activation: Optional[str] = None, *, seed: Seed = None,
                 rng: Optional[random.Random] = None, name: str = "",
                 nonlin: Optional[bool] = None):
        self.nin = _check_count(nin, "nin")
        self.activation = activation = _activation(activation, nonlin)
        self.name = _check_name(name)
        pre = f"{name}." if name else ""
        r = _rng(seed, rng)
        self.w = [Value(x, f"{pre}w{i}") for i, x in enumerate(_init(r, self.nin))]
        self.b = Value(0.0, f"{pre}b")
        self._zlabel, self._alabel = f"{pre}z", f"{pre}a"
        self._act = _ACT.get(activation)  # None for 'linear'

    def _forward(self, x: list) -> Value:
        """The hot path: x is a list of Values of the right length."""
        z = Value.sum((*map(_mul, self.w, x), self.b))
        z.label = self._zlabel
        act = self._act
        if act is None:
            return z
        a = act(z)
        a.label = self._alabel
        return a

    def __call__(self, x: Input) -> Value:
        return self._forward(_as_inputs(x, self.nin, self))

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        pre = f"{self.name}." if self.name else ""
        for i, w in enumerate(self.w):
            yield f"{pre}w{i}", w
        yield f"{pre}b", self.b

    def _config(self) -> dict:
        cfg = {"nin": self.nin, "activation": self.activation}
        if self.name:  # the name prefixes every parameter name, so a file must carry it
            cfg["name"] = self.name
        return cfg

    @classmethod
    def _parameter_count(cls, args: dict) -> Optional[int]:
        n = _ints(args, "nin")
        return None if n is None else n[0] + 1

    def __repr__(self) -> str:
        return f"Neuron({self.nin}, activation={self.activation!r})"


class Layer(Module):
    """`nout` neurons reading the same inputs. One output: a Value; more: a list of Values."""

    def __init__(self, nin: int, nout: int, activation: Optional[str] = None, *,
                 seed: Seed = None, rng: Optional[random.Random] = None, name: str = "",
                 nonlin: Optional[bool] = None):
        self.nin = _check_count(nin, "nin")
        self.nout = _check_count(nout, "nout")
        self.activation = activation = _activation(activation, nonlin)
        self.name = _check_name(name)
        r = _rng(seed, rng)
        pre = f"{name}." if name else ""
        self.neurons = [Neuron(self.nin, activation, rng=r, name=f"{pre}N{i}")
                        for i in range(self.nout)]

    def _forward(self, x: list) -> list:
        return [n._forward(x) for n in self.neurons]

    def __call__(self, x: Input) -> Union[Value, list]:
        out = self._forward(_as_inputs(x, self.nin, self))
        return out[0] if len(out) == 1 else out

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        for n in self.neurons:
            yield from n.named_parameters()

    def _config(self) -> dict:
        cfg = {"nin": self.nin, "nout": self.nout, "activation": self.activation}
        if self.name:  # the name prefixes every parameter name, so a file must carry it
            cfg["name"] = self.name
        return cfg

    @classmethod
    def _parameter_count(cls, args: dict) -> Optional[int]:
        n = _ints(args, "nin", "nout")
        return None if n is None else (n[0] + 1) * n[1]

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, activation={self.activation!r})"


class MLP(Module):
    """A multi-layer perceptron: hidden layers use `activation`, the last layer is linear.

    MLP(2, [16, 16, 1]) is micrograd's moons classifier (337 parameters). Layers are named
    L0, L1, ... and neurons L0.N0, ..., so every node's label says where it lives. One output
    gives a Value, several a list. A hidden layer of width 1 works (it feeds a list onward).
    """

    def __init__(self, nin: int, nouts: Sequence[int], activation: str = "relu", *,
                 seed: Seed = None, rng: Optional[random.Random] = None):
        self.nin = _check_count(nin, "nin")
        if isinstance(nouts, (str, bytes)) or not isinstance(nouts, Sequence) or not nouts:
            raise ValueError(f"nouts must be a non-empty list of layer widths, got {nouts!r}")
        self.nouts = [_check_count(n, "each layer width in nouts") for n in nouts]
        self.activation = _check_activation(activation)
        r = _rng(seed, rng)
        sizes = [self.nin] + self.nouts
        last = len(self.nouts) - 1
        self.layers = [Layer(sizes[i], sizes[i + 1], "linear" if i == last else activation,
                             rng=r, name=f"L{i}") for i in range(len(self.nouts))]

    def __call__(self, x: Input) -> Union[Value, list]:
        x = _as_inputs(x, self.nin, "MLP")
        for layer in self.layers:
            x = layer._forward(x)
        return x[0] if len(x) == 1 else x

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        for layer in self.layers:
            yield from layer.named_parameters()

    def _config(self) -> dict:
        return {"nin": self.nin, "nouts": list(self.nouts), "activation": self.activation}

    @classmethod
    def _parameter_count(cls, args: dict) -> Optional[int]:
        nouts = args.get("nouts")
        if _ints(args, "nin") is None or type(nouts) is not list or not nouts \
                or not all(type(n) is int and n >= 1 for n in nouts):
            return None
        sizes = [args["nin"]] + nouts
        return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))

    def __repr__(self) -> str:
        head = (f"MLP({self.nin}, {self.nouts}, activation={self.activation!r}): "
                f"{self.num_parameters()} parameters")
        return "\n".join([head] + [f"  {l.name}: {l!r}" for l in self.layers])
