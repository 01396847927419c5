"""Saliency methods, one file per family. Importing this package fills the registry."""

from __future__ import annotations

from .cam import CAM, GradCAM, GradCAMPlusPlus, GuidedGradCAM, HiResCAM
from .fullgrad import FullGrad, SimpleFullGrad, completeness_gap, fullgrad_decomposition
from .gradient import Deconvnet, Gradient, GuidedBackprop, InputXGradient
from .integrated import IntegratedGradients
from .occlusion import Occlusion
from .registry import REGISTRY, MethodInfo, get_method, method_names, register
from .smooth import SmoothGrad

__all__ = [
    "CAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "GuidedGradCAM",
    "HiResCAM",
    "Gradient",
    "InputXGradient",
    "GuidedBackprop",
    "Deconvnet",
    "IntegratedGradients",
    "SmoothGrad",
    "Occlusion",
    "FullGrad",
    "SimpleFullGrad",
    "fullgrad_decomposition",
    "completeness_gap",
    "REGISTRY",
    "MethodInfo",
    "get_method",
    "method_names",
    "register",
]
