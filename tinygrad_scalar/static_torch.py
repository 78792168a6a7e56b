"""Kept for old imports: the torch backend lives in tinygrad_scalar.static.torch_backend."""
from .static.torch_backend import TorchProgram, to_torch

__all__ = ["TorchProgram", "to_torch"]
