"""The bundled demo: a small trained 3D lesion classifier and brain MRI volumes to explain.

The volumes are derived from the ICBM 2009a nonlinear symmetric MNI152 T1 template (see
``assets/LICENSE-MNI.txt``, whose notice travels with every copy) by
``examples/make_demo_assets.py``: resampled to a 64^3 grid of 3 mm voxels in MNI (RAS) world
space, with a synthetic lesion-like blob added in some cases. Every volume keeps its affine,
so a map computed on it overlays the template in any viewer. Only nibabel and torch are needed
here (no nilearn).

The network input is the volume exactly as stored: T1 intensity divided by the template's mean
inside the brain (brain tissue about 1, background about 0), with the training augmentation
(global scaling, smooth bias field, Gaussian noise). To try your own T1 volume, resample it to
3 mm and divide it by its mean inside the brain.

Example:
    >>> from volsal import demo
    >>> model = demo.load_demo_model()
    >>> x, affine, mask = demo.load_demo_case("example_lesion")
    >>> x.shape, affine.shape, mask.shape
    (torch.Size([1, 1, 64, 64, 64]), (4, 4), torch.Size([64, 64, 64]))
    >>> int(model(x).argmax(1))
    1
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ImageReadError, ParameterError
from .model import DemoNet3D

__all__ = [
    "CLASS_NAMES",
    "DEMO_ASSETS",
    "DEMO_LAYER",
    "DemoNet3D",
    "case_path",
    "demo_metadata",
    "list_demo_cases",
    "load_brain_mask",
    "load_demo_case",
    "load_demo_model",
]

DEMO_ASSETS: Path = Path(str(resources.files(__name__).joinpath("assets")))
"""Folder of the bundled files: weights, volumes, masks, ``metadata.json``, licence."""

DEMO_LAYER = "features.block4"
"""The natural Grad-CAM layer of :class:`DemoNet3D` (last conv stage, 8^3 cells)."""

CLASS_NAMES = ("no lesion", "lesion")
"""Class index -> name for the demo model's two logits."""

WEIGHTS_FILE = "demo_net.pt"
METADATA_FILE = "metadata.json"
BRAIN_MASK_FILE = "brain_mask.nii.gz"


@lru_cache(maxsize=1)
def _metadata_cached() -> str:
    path = DEMO_ASSETS / METADATA_FILE
    if not path.is_file():
        raise ImageReadError(
            f"demo metadata not found: expected {path}; got no file. Fix: reinstall volsal, or "
            "rebuild the assets with `python examples/make_demo_assets.py`."
        )
    return path.read_text(encoding="utf-8")


def demo_metadata() -> dict[str, Any]:
    """The contents of ``metadata.json``: seed, accuracies, cases and their lesion centres.

    Returns:
        A fresh dict (safe to modify).
    """
    return json.loads(_metadata_cached())


def list_demo_cases() -> list[str]:
    """Names of the bundled cases, ``"example_lesion"`` first.

    Returns:
        Case names accepted by :func:`load_demo_case` and :func:`case_path`.
    """
    return list(demo_metadata()["cases"])


def case_path(name: str = "example_lesion", mask: bool = False) -> Path:
    """Path of a bundled case's NIfTI volume (or of its lesion mask with ``mask=True``).

    Args:
        name: a name from :func:`list_demo_cases`.
        mask: return the lesion mask's path instead of the volume's.

    Returns:
        The file's path inside :data:`DEMO_ASSETS`.

    Raises:
        ParameterError: ``name`` is not a bundled case.
    """
    cases = demo_metadata()["cases"]
    if name not in cases:
        raise ParameterError(
            f"unknown demo case: expected one of {sorted(cases)}; got {name!r}. "
            "Fix: pick a name from volsal.demo.list_demo_cases()."
        )
    return DEMO_ASSETS / cases[name]["mask_file" if mask else "file"]


def load_demo_model(device: torch.device | str | None = None) -> DemoNet3D:
    """The trained demo classifier in eval mode (weights read with ``weights_only=True``).

    Args:
        device: where to put the model (default: CPU).

    Returns:
        A :class:`DemoNet3D`; logits ``(B, 2)``, class 1 = lesion. Its natural Grad-CAM layer
        is :data:`DEMO_LAYER`.
    """
    model = DemoNet3D()
    state = torch.load(DEMO_ASSETS / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    if device is not None:
        model = model.to(device)
    return model.eval()


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file as ``(float32 array, float64 affine)`` with nibabel.

    The array is the stored data with its scaling (``scl_slope``/``scl_inter``) applied, in
    float32; the affine is nibabel's best affine (sform, else qform).

    Raises:
        ImageReadError: the file is missing or not a readable 3D NIfTI.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise ImageReadError(f"cannot read {path}: {exc}") from exc
    if data.ndim != 3:
        raise ImageReadError(f"expected a 3D volume in {path}; got shape {data.shape}.")
    return data, np.asarray(img.affine, dtype=np.float64)


def load_demo_case(
    name: str = "example_lesion",
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """A bundled volume ready for the demo model, its affine and its lesion mask.

    Args:
        name: a name from :func:`list_demo_cases` (default ``"example_lesion"``).

    Returns:
        ``(x, affine, mask)``: ``x`` float32 ``(1, 1, 64, 64, 64)``, the network input exactly
        as stored; ``affine`` float64 ``(4, 4)``, voxel index ``(i, j, k)`` of ``x``'s spatial
        axes -> RAS (MNI) world mm; ``mask`` bool ``(64, 64, 64)``, the lesion (all False for
        a lesion-free case).

    Raises:
        ParameterError: ``name`` is not a bundled case.
    """
    data, affine = read_volume(case_path(name))
    mask_data, _ = read_volume(case_path(name, mask=True))
    x = torch.from_numpy(np.ascontiguousarray(data))[None, None]
    mask = torch.from_numpy(np.ascontiguousarray(mask_data > 0.5))
    return x, affine, mask


def load_brain_mask() -> tuple[torch.Tensor, np.ndarray]:
    """The brain mask of the template on the canonical demo grid, with its affine.

    Cases may be shifted by a few voxels against this grid (training augmentation); map a case's
    voxels through the two affines to compare them.

    Returns:
        ``(mask, affine)``: bool ``(64, 64, 64)`` and float64 ``(4, 4)``.
    """
    data, affine = read_volume(DEMO_ASSETS / BRAIN_MASK_FILE)
    return torch.from_numpy(np.ascontiguousarray(data > 0.5)), affine
