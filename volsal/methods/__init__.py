"""Saliency methods, one file per family. Importing this package fills the registry."""

from __future__ import annotations

from .cam import CAM, GradCAM
from .gradient import Gradient
from .registry import REGISTRY, MethodInfo, get_method, method_names, register

__all__ = [
    "CAM",
    "GradCAM",
    "Gradient",
    "REGISTRY",
    "MethodInfo",
    "get_method",
    "method_names",
    "register",
]
