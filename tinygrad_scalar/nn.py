"""Neural networks built from Values: Neuron, Layer, MLP, with PyTorch's Module habits.

A Neuron is the lecture's picture: one weighted sum node Σ(w_i·x_i, b) followed by an
activation. Every node a model creates carries a dotted label (`L0.N3.w1`, `L0.N3.z`,
`L0.N3.a`, ...) so a drawn graph can be grouped by layer and neuron. Models save to JSON
(architecture + parameters, written atomically) and load back with every field validated
before a single parameter changes.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import random
from functools import partial
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from .engine import MUL, OPS, Value, binary, unary
from .files import write_atomic

__all__ = ["Module", "Neuron", "Layer", "MLP", "ModelFileError", "ACTIVATIONS"]

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
    """One random.Random from either `seed=` (int or Random) or `rng=`."""
    if rng is not None and seed is not None:
        raise TypeError("pass either seed= or rng=, not both")
    if rng is None:
        rng = seed
    if isinstance(rng, random.Random):
        return rng
    if rng is None:
        return random.Random()
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"seed must be an int or a random.Random, "
                        f"got {type(rng).__name__}: {rng!r}")
    return random.Random(int(rng))


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
    elif not hasattr(x, "__len__"):
        try:
            x = list(x)
        except TypeError:
            raise TypeError(f"{_who(who)} needs a sequence of {nin} numbers or Values, "
                            f"got {type(x).__name__}: {x!r}") from None
    if len(x) != nin:
        raise ValueError(f"{_who(who)} expects {nin} input(s), got {len(x)}: {x!r}")
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


class _Load:
    """`Cls.load(path)` builds a new model; `model.load(path)` fills an existing one."""

    def __get__(self, obj, cls):
        return cls._load_new if obj is None else obj._load_into


class Module:
    """Base class: parameters, gradients and saving, as in torch.nn.Module.

    Subclasses implement `named_parameters()` and `_config()` (the constructor arguments that
    fix the architecture); everything else is shared.
    """

    _registry: dict = {}
    _registry_key = "Module"

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
        """(name, Value) for every parameter, in a fixed order."""
        return iter(())

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
        raise NotImplementedError(f"{type(self).__name__} cannot be saved: a Module subclass "
                                  f"implements _config(), the constructor arguments that rebuild "
                                  f"it (as a dict of JSON values)")

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
    def _read(path: Union[str, os.PathLike]) -> tuple[str, dict]:
        """The saved document, with its outer structure checked."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no saved model at {path!r}")

        def no_constants(name):
            raise ModelFileError(f"{path}: {name} is not a number a model can hold")

        def no_duplicates(pairs):
            d = {}
            for k, v in pairs:
                if k in d:
                    raise ModelFileError(f"{path}: key {k!r} appears twice")
                d[k] = v
            return d

        try:
            with open(path, "r", encoding="utf-8") as f:
                doc = json.load(f, parse_constant=no_constants, object_pairs_hook=no_duplicates)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"{path}: not a saved model (corrupt JSON: {e})") from None
        except RecursionError:
            raise ModelFileError(f"{path}: not a saved model (JSON nested too deeply)") from None
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
        return path, doc

    @classmethod
    def _load_new(cls, path: Union[str, os.PathLike]) -> "Module":
        """`MLP.load(path)` / `Module.load(path)`: a new model of the saved architecture.

        Raises FileNotFoundError for a missing file and ModelFileError (a ValueError) for a
        corrupt one, another format, an unknown or mismatched class, or bad parameters.
        """
        path, doc = cls._read(path)
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
        if model.architecture() != arch:  # e.g. an unknown argument such as a seed
            raise ModelFileError(f"{path}: bad architecture {arch!r}: a {klass.__name__} "
                                 f"saves {model.architecture()!r}")
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
        path, doc = self._read(path)
        mine = self.architecture()
        if doc["architecture"] != mine:
            raise ModelFileError(f"{path}: saved for {doc['architecture']}, this model is {mine}")
        self._assign(doc["parameters"], path)
        return self


def _init(rng: random.Random, nin: int) -> list[float]:
    u = rng.uniform
    return [u(-1.0, 1.0) for _ in range(nin)]


class Neuron(Module):
    """One neuron: a = activation(Σ(w_i·x_i, b)), the sum as ONE n-ary node.

    Weights start uniform in (-1, 1) (as in micrograd), the bias at 0. `name` prefixes the
    labels of everything the neuron makes: parameters `w0.., b`, sum `z`, output `a`.
    """

    def __init__(self, nin: int, activation: str = "relu", *, seed: Seed = None,
                 rng: Optional[random.Random] = None, name: str = ""):
        self.nin = _check_count(nin, "nin")
        self.activation = _check_activation(activation)
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

    def __init__(self, nin: int, nout: int, activation: str = "relu", *, seed: Seed = None,
                 rng: Optional[random.Random] = None, name: str = ""):
        self.nin = _check_count(nin, "nin")
        self.nout = _check_count(nout, "nout")
        self.activation = _check_activation(activation)
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
