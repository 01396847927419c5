"""Medical image I/O and geometry: load scans, write maps on their grid, undo preprocessing.

Convention (``docs/geometry.md``): a :class:`Scan` holds ``data`` ``(C, *spatial)`` in nibabel's
voxel axis order ``(i, j, k)`` and ``affine``, voxel index -> RAS world mm, whichever reader
(nibabel or SimpleITK) loaded the file.
"""

from __future__ import annotations

from .atomic import atomic_output, atomic_write, check_writable
from .inverse import AFFINE_TRANSFORMS, to_source
from .metatensor import from_metatensor, to_metatensor
from .read import as_scan, load
from .resample import resample_to
from .scan import Scan, affine_from_geometry
from .write import (
    display_window,
    feature_grid_affine,
    feature_to_input_matrix,
    save_feature_map,
    save_like,
    sidecar_path,
)

__all__ = [
    "AFFINE_TRANSFORMS",
    "Scan",
    "affine_from_geometry",
    "as_scan",
    "atomic_output",
    "atomic_write",
    "check_writable",
    "display_window",
    "feature_grid_affine",
    "feature_to_input_matrix",
    "from_metatensor",
    "load",
    "resample_to",
    "save_feature_map",
    "save_like",
    "sidecar_path",
    "to_metatensor",
    "to_source",
]
