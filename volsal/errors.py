"""Typed errors and warnings raised by volsal.

Every error subclasses :class:`VolsalError` *and* the builtin exception a user would
already catch (``ValueError``, ``LookupError``, ...), so ``except ValueError`` keeps working.
Messages follow one pattern: what was expected, what was got, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "VolsalError",
    "InputShapeError",
    "InputValueError",
    "TargetError",
    "LayerNotFoundError",
    "LayerNotCalledError",
    "OutputShapeError",
    "UnsupportedModelError",
    "SectionError",
    "ParameterError",
    "VolsalIOError",
    "ImageReadError",
    "FileExistsRefusedError",
    "GeometryError",
    "VolsalWarning",
    "DegenerateMapWarning",
    "CompletenessWarning",
    "GeometryWarning",
]


class VolsalError(Exception):
    """Base class of every error volsal raises on purpose."""


class InputShapeError(VolsalError, ValueError):
    """The input tensor has the wrong rank or shape (expected ``(B, C, *spatial)``)."""


class InputValueError(VolsalError, ValueError):
    """The input tensor has the wrong dtype or holds non-finite values."""


class TargetError(VolsalError, ValueError):
    """The target cannot be turned into one finite score per sample."""


class LayerNotFoundError(VolsalError, LookupError):
    """A layer name does not exist in the model (the message lists the closest names)."""


class LayerNotCalledError(VolsalError, RuntimeError):
    """A layer exists but was never called during the forward pass."""


class OutputShapeError(VolsalError, ValueError):
    """The model's output cannot be scored (no class axis, wrong batch size...)."""


class UnsupportedModelError(VolsalError, TypeError):
    """The method cannot be applied to this model (e.g. guided backprop without ReLUs)."""


class SectionError(VolsalError, ValueError):
    """``section_names`` / ``adaptive_layer`` do not describe the model."""


class ParameterError(VolsalError, ValueError):
    """A method option is out of its valid range (``n_steps < 1``, stride 0, ...)."""


class VolsalIOError(VolsalError, OSError):
    """Base class of file-related errors."""


class ImageReadError(VolsalIOError):
    """A file cannot be read as an image (missing, truncated, corrupt, unknown format)."""


class FileExistsRefusedError(VolsalIOError, FileExistsError):
    """Refused to overwrite an existing file (pass ``overwrite=True`` to allow it)."""


class GeometryError(VolsalError, ValueError):
    """A map's grid does not match the reference image's grid or its feature grid."""


class VolsalWarning(UserWarning):
    """Base class of volsal's warnings."""


class DegenerateMapWarning(VolsalWarning):
    """The map is constant or all-zero (e.g. a CAM layer whose output is a single voxel)."""


class CompletenessWarning(VolsalWarning):
    """A completeness identity (FullGrad, integrated gradients) does not hold to tolerance."""


class GeometryWarning(VolsalWarning):
    """A geometric mapping could not be derived exactly and a fallback was used."""
