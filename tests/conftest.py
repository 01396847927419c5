from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def spatial_dims(request):
    return request.param


def make_input(
    spatial_dims: int,
    batch: int = 2,
    channels: int = 1,
    size: int = 8,
    seed: int = 0,
    dtype=torch.float32,
):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch, channels) + (size,) * spatial_dims, generator=gen, dtype=dtype)
