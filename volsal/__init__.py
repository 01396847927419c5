"""volsal: saliency maps for 2D and 3D medical-imaging CNNs.

Every method has one contract: ``Method(model, **options)(x, target)`` with ``x`` of shape
``(B, C, H, W)`` or ``(B, C, D, H, W)``. See the README for the method table.
"""

from __future__ import annotations

from . import errors, ops, spatial, targets, testing
from .base import Attribution, Explanation
from .errors import (
    InputShapeError,
    InputValueError,
    LayerNotCalledError,
    LayerNotFoundError,
    OutputShapeError,
    ParameterError,
    TargetError,
    UnsupportedModelError,
)
from .layers import auto_layer, layer_names, resolve_layer
from .methods import (
    CAM,
    REGISTRY,
    Deconvnet,
    FullGrad,
    GradCAM,
    GradCAMPlusPlus,
    Gradient,
    GuidedBackprop,
    GuidedGradCAM,
    HiResCAM,
    InputXGradient,
    IntegratedGradients,
    Occlusion,
    SimpleFullGrad,
    SmoothGrad,
    completeness_gap,
    fullgrad_decomposition,
    get_method,
    method_names,
)
from .targets import BinaryTarget, ClassTarget, MultiTarget, RegionTarget

__version__ = "0.1.0"

# Submodules with heavier dependencies (nibabel, SimpleITK, matplotlib) load on first use:
# ``import volsal`` stays light, and ``volsal.io.load(...)`` works without a separate import.
_LAZY_SUBMODULES = ("io", "viz", "metrics", "sanity", "demo", "compat", "hooks", "methods")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Attribution",
    "BinaryTarget",
    "CAM",
    "ClassTarget",
    "Explanation",
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
    "InputShapeError",
    "InputValueError",
    "LayerNotCalledError",
    "LayerNotFoundError",
    "OutputShapeError",
    "ParameterError",
    "REGISTRY",
    "MultiTarget",
    "RegionTarget",
    "TargetError",
    "UnsupportedModelError",
    "__version__",
    "auto_layer",
    "compat",
    "demo",
    "io",
    "metrics",
    "sanity",
    "viz",
    "errors",
    "get_method",
    "layer_names",
    "method_names",
    "ops",
    "resolve_layer",
    "spatial",
    "targets",
    "testing",
]
