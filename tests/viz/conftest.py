from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def gaussian(shape, centre, sigma=2.0):
    """Gaussian bump peaking (value 1) exactly at the voxel ``centre``."""
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    return np.exp(-r2 / (2 * sigma**2))


class FakeScan:
    """The volsal.io.Scan duck type: .data (C, *spatial), .affine (4, 4)."""

    def __init__(self, data, affine):
        self.data = data
        self.affine = np.asarray(affine, dtype=np.float64)
