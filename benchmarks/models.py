"""Benchmark models and inputs: built the same way, from a seed, in every measurement process.

Torch and MONAI are imported inside :func:`build` only, so the runner can read the table of
models without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelDef:
    """One benchmark model.

    Attributes:
        name: key used on the command line and in the results.
        title: human-readable name for the tables.
        spatial_dims: 2 or 3.
        in_channels: input channels.
        sizes: edge lengths of the (cubic / square) input in a full run.
        smoke_sizes: edge lengths in ``--smoke`` mode.
        cam_layer: dotted name of the layer CAM methods look at (same for every library).
    """

    name: str
    title: str
    spatial_dims: int
    in_channels: int
    sizes: tuple[int, ...]
    smoke_sizes: tuple[int, ...]
    cam_layer: str


MODELS: dict[str, ModelDef] = {
    m.name: m
    for m in (
        ModelDef(
            "resnet18_3d",
            "MONAI resnet18 3D",
            spatial_dims=3,
            in_channels=1,
            sizes=(64, 96),
            smoke_sizes=(16,),
            cam_layer="layer4",
        ),
        ModelDef(
            "densenet121_3d",
            "MONAI DenseNet121 3D",
            spatial_dims=3,
            in_channels=1,
            sizes=(64, 96),
            # DenseNet121 downsamples by 32: 32^3 is the smallest input it accepts.
            smoke_sizes=(32,),
            # the head's ReLU after features.norm5: the last module with spatial output, and
            # MONAI's own choice in its GradCAM docs (hooking features.norm5 makes MONAI's
            # GradCAM crash: its backward hook meets the in-place ReLU that follows)
            cam_layer="class_layers.relu",
        ),
        ModelDef(
            "resnet18_2d",
            "MONAI resnet18 2D (3 channels)",
            spatial_dims=2,
            in_channels=3,
            sizes=(224,),
            smoke_sizes=(32,),
            cam_layer="layer4",
        ),
    )
}

NUM_CLASSES = 2


def _make_model(name: str) -> Any:
    if name == "resnet18_3d":
        from monai.networks.nets import resnet18

        return resnet18(spatial_dims=3, n_input_channels=1, num_classes=NUM_CLASSES)
    if name == "densenet121_3d":
        from monai.networks.nets import DenseNet121

        return DenseNet121(spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES)
    if name == "resnet18_2d":
        from monai.networks.nets import resnet18

        return resnet18(spatial_dims=2, n_input_channels=3, num_classes=NUM_CLASSES)
    raise KeyError(f"unknown benchmark model {name!r}; known: {sorted(MODELS)}")


def build(
    name: str, size: int, device: str, seed: int = 0, batch: int = 1
) -> tuple[torch.nn.Module, torch.Tensor]:
    """Build a model in eval mode and a seeded input on ``device``.

    Args:
        name: a key of :data:`MODELS`.
        size: edge length of the input.
        device: ``"cpu"`` or ``"cuda"``.
        seed: seeds the weights (global RNG) and the input (its own generator).
        batch: batch size of the input.

    Returns:
        ``(model, x)`` with ``x`` of shape ``(batch, C, size, ..., size)``.
    """
    import torch

    mdef = MODELS[name]
    torch.manual_seed(seed)
    model = _make_model(name).eval().to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    shape = (batch, mdef.in_channels) + (size,) * mdef.spatial_dims
    x = torch.randn(shape, generator=gen).to(device)
    return model, x
