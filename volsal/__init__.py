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
from .methods import CAM, REGISTRY, GradCAM, Gradient, get_method, method_names
from .targets import BinaryTarget, ClassTarget, RegionTarget

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "BinaryTarget",
    "CAM",
    "ClassTarget",
    "Explanation",
    "GradCAM",
    "Gradient",
    "InputShapeError",
    "InputValueError",
    "LayerNotCalledError",
    "LayerNotFoundError",
    "OutputShapeError",
    "ParameterError",
    "REGISTRY",
    "RegionTarget",
    "TargetError",
    "UnsupportedModelError",
    "__version__",
    "auto_layer",
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
