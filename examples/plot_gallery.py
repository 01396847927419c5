"""Make the figures of docs/visualization.md from a synthetic head with a lesion.

The volume is LPS-oriented (voxel axis i runs toward patient-Left, j toward Posterior,
k toward Superior) with anisotropic 1.5 x 1.5 x 4 mm voxels, as scanners often store it.
A sphere "lesion" sits in the patient's LEFT, ANTERIOR, SUPERIOR quadrant, and the "head" has
a nose bump at the front, so every figure can be checked by eye: in the radiological axial
view the lesion is on the screen's right and the nose at the top.

    python examples/plot_gallery.py [--out docs/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from volsal import viz  # noqa: E402
from volsal.compat.visualization import tile_input_and_maps  # noqa: E402

SHAPE = (64, 72, 28)  # i (R->L), j (A->P), k (I->S)
SPACING = (1.5, 1.5, 4.0)
AFFINE = np.array(
    [
        [-SPACING[0], 0, 0, 47.0],  # i increases toward patient-left (RAS x decreases)
        [0, -SPACING[1], 0, 53.0],  # j increases toward posterior
        [0, 0, SPACING[2], -54.0],  # k increases toward superior
        [0, 0, 0, 1.0],
    ]
)
LESION_MM = np.array([-20.0, 20.0, 20.0])  # RAS: patient-left, anterior, superior


class Scan:
    """Minimal stand-in for volsal.io.Scan (``.data`` ``(C, *spatial)``, ``.affine``)."""

    def __init__(self, data: np.ndarray, affine: np.ndarray) -> None:
        self.data = data
        self.affine = affine


def world_grid() -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), axis=-1)
    return ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]  # (i, j, k, 3) RAS mm


def synthetic_case(seed: int = 0) -> tuple[Scan, np.ndarray, np.ndarray]:
    """The scan, an unsigned map (a Gaussian on the lesion) and a signed map."""
    rng = np.random.default_rng(seed)
    xyz = world_grid()
    head = ((xyz[..., 0] / 42) ** 2 + (xyz[..., 1] / 50) ** 2 + (xyz[..., 2] / 46) ** 2) <= 1
    nose = ((xyz[..., 0] / 7) ** 2 + ((xyz[..., 1] - 52) / 8) ** 2 + (xyz[..., 2] / 10) ** 2) <= 1
    brain = ((xyz[..., 0] / 36) ** 2 + (xyz[..., 1] / 44) ** 2 + (xyz[..., 2] / 40) ** 2) <= 1
    img = 300.0 * head + 300.0 * nose - 150.0 * brain + 50 * np.sin(xyz[..., 1] / 6) * brain
    r = np.linalg.norm(xyz - LESION_MM, axis=-1)
    img = img + 500.0 * (r <= 8) + rng.normal(0, 15, SHAPE)
    unsigned = np.exp(-(r**2) / (2 * 9.0**2))
    r2 = np.linalg.norm(xyz - np.array([25.0, -25.0, 0.0]), axis=-1)
    signed = unsigned - 0.6 * np.exp(-(r2**2) / (2 * 12.0**2))
    return Scan(img[None].astype(np.float32), AFFINE), unsigned, signed


def main(out: Path, overwrite: bool = True) -> list[Path]:
    """Write every gallery PNG under ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    scan, heat, signed = synthetic_case()
    written = []

    def save(fig, name):
        written.append(viz.save_figure(fig, out / name, overwrite=overwrite, dpi=80))

    save(
        viz.plot_slices(
            scan, heat, "axial", n=6, threshold=0.1, title="Gaussian map on the lesion"
        ),
        "viz_slices_axial.png",
    )
    save(viz.plot_slices(scan, heat, "coronal", n=3, threshold=0.1), "viz_slices_coronal.png")
    save(viz.plot_orthogonal(scan, heat, at="peak", threshold=0.1), "viz_orthogonal.png")
    save(
        viz.plot_slices(scan, signed, "axial", n=3, pick="uniform", title="signed map"),
        "viz_slices_signed.png",
    )
    rng = np.random.default_rng(1)
    maps = {
        "trained": heat,
        "half as strong": 0.5 * np.roll(heat, 6, axis=0),
        "randomised": 0.3 * np.abs(rng.normal(size=SHAPE)) * (scan.data[0] > 100),
    }
    save(viz.compare(scan, maps, axis="axial", slices=None), "viz_compare.png")
    k = int(np.argmax(heat.max(axis=(0, 1))))
    # rows j (anterior at the top), columns i (patient-left on the right): radiological
    img2d, map2d = scan.data[0][:, :, k].T, heat[:, :, k].T
    save(viz.plot_overlay(img2d, map2d, threshold=0.1, title="2D overlay"), "viz_overlay_2d.png")
    grads = rng.normal(size=(3,) + img2d.shape) * map2d[None]  # a noisy 3-channel gradient
    smooth = np.roll(map2d, 3, axis=1) * (1 + 0.1 * rng.normal(size=img2d.shape))
    tile = tile_input_and_maps(
        img2d,
        [viz.grayscale(grads, channel_axis=0), viz.grayscale(smooth), viz.grayscale(map2d)],
        ["lesion (p = 0.97)", "gradient", "smoothed", "Grad-CAM-like"],
        title="tile_input_and_maps (seed 004)",
    )
    save(tile, "viz_tile.png")
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images", type=Path)
    for p in main(parser.parse_args().out):
        print(p)
