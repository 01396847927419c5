"""``volsal explain``: explain a model's decision on a scan and write the maps on the scan's grid.

The scan is loaded with its geometry, preprocessed as the model expects (built-in flags, or
``--preprocess pkg.module:function`` returning a MONAI transform), explained by one or more
methods, and every map is brought back to the *source* scan's grid (inverting the
preprocessing) and written as NIfTI (or NRRD/MHA) with the scan's affine and a JSON sidecar.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import torch

from ..errors import ParameterError
from .model_loading import add_model_arguments, load_model_from_args


def _floats(text: str, n: int | None = None, what: str = "value") -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(f"{what} must be comma-separated numbers; got {text!r}.") from None
    if n is not None and len(vals) == 1:
        vals = vals * n
    return vals


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "explain",
        help="explain a scan and write the maps on its grid",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument(
        "--input", required=True, help="scan: .nii/.nii.gz/.nrrd/.mha/.mhd or DICOM folder"
    )
    p.add_argument(
        "--method", action="append", dest="methods", help="method name (repeatable), e.g. gradcam"
    )
    p.add_argument("--target", default=None, help="class index (default: the predicted class)")
    p.add_argument("--layer", default=None, help="layer for CAM methods (default: auto)")
    p.add_argument("--out", default=None, help="output map path (one method) ")
    p.add_argument("--out-dir", default=None, help="output folder (several methods)")
    p.add_argument("--png", default=None, help="also write a slice-montage PNG overlay here")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    g = p.add_argument_group("preprocessing (applied in this order, inverted for the maps)")
    g.add_argument("--orientation", default=None, help="axis codes, e.g. RAS")
    g.add_argument("--spacing", default=None, help="voxel size in mm, e.g. 2 or 1.5,1.5,3")
    g.add_argument("--size", default=None, help="network input size, e.g. 96,96,96")
    g.add_argument(
        "--intensity",
        choices=("none", "minmax", "zscore"),
        default="none",
        help="intensity scaling (minmax to [0, 1], or z-score)",
    )
    g.add_argument(
        "--preprocess",
        default=None,
        metavar="PKG.MODULE:FUNCTION",
        help="a function returning a MONAI array transform (replaces the flags above)",
    )
    return p


def build_transform(args: argparse.Namespace, spatial_dims: int):
    """The MONAI array transform the flags describe (``None`` when there is none)."""
    from monai.transforms import (
        Compose,
        NormalizeIntensity,
        Orientation,
        Resize,
        ScaleIntensity,
        Spacing,
    )

    if args.preprocess:
        if ":" not in args.preprocess:
            raise ParameterError("--preprocess must look like 'package.module:function'.")
        modname, fname = args.preprocess.split(":", 1)
        try:
            fn = getattr(importlib.import_module(modname), fname)
        except (ImportError, AttributeError) as err:
            raise ParameterError(f"cannot load --preprocess {args.preprocess}: {err}") from None
        return fn()
    steps = []
    if args.orientation:
        steps.append(Orientation(axcodes=args.orientation))
    if args.spacing:
        steps.append(
            Spacing(pixdim=_floats(args.spacing, spatial_dims, "--spacing"), mode="bilinear")
        )
    if args.size:
        size = tuple(int(v) for v in _floats(args.size, spatial_dims, "--size"))
        steps.append(
            Resize(spatial_size=size, mode="trilinear" if spatial_dims == 3 else "bilinear")
        )
    if args.intensity == "minmax":
        steps.append(ScaleIntensity(minv=0.0, maxv=1.0))
    elif args.intensity == "zscore":
        steps.append(NormalizeIntensity())
    return Compose(steps) if steps else None


def run(args: argparse.Namespace) -> int:
    from .. import io
    from ..methods import get_method

    methods = args.methods or ["gradcam"]
    infos = [get_method(m) for m in methods]  # unknown names fail before any work
    if args.out and len(infos) > 1:
        raise ParameterError("--out names one file; with several --method use --out-dir.")
    scan = io.load(args.input)
    spatial_dims = scan.data.ndim - 1
    model = load_model_from_args(args, args.device)
    transform = build_transform(args, spatial_dims)
    net_in = io.to_metatensor(scan)
    if transform is not None:
        net_in = transform(net_in)
    x = torch.as_tensor(net_in)[None].float().to(args.device)
    target = None if args.target is None else int(args.target)

    stem = Path(args.input).name.split(".")[0]
    out_dir = (
        Path(args.out_dir) if args.out_dir else (Path(args.out).parent if args.out else Path("."))
    )
    written = []
    for info in infos:
        kwargs = {}
        if args.layer and info.kind == "cam":
            kwargs["layer"] = args.layer
        method = info.cls(model, **kwargs)
        exp = method.explain(x, target=target)
        fmap = exp.maps[0].sum(0, keepdim=True) if exp.maps.shape[1] > 1 else exp.maps[0]
        on_source = (
            io.to_source(fmap.detach().cpu(), net_in, source=scan) if transform else fmap.cpu()
        )
        path = Path(args.out) if args.out else out_dir / f"{stem}_{info.name}.nii.gz"
        written.append(
            io.save_like(on_source, scan, path, overwrite=args.overwrite, explanation=exp)
        )
        cls = "" if exp.classes is None else f" class {exp.classes.tolist()[0]}"
        print(f"{info.name}: target{cls}, score {exp.scores.tolist()[0]:.4g}")
        if args.png:
            from .. import viz

            png = Path(args.png)
            if len(infos) > 1:
                png = png.with_name(f"{png.stem}_{info.name}{png.suffix}")
            fig = viz.plot_slices(
                scan, on_source[0], axis="axial", pick="peak", title=f"{info.cls.__name__}{cls}"
            )
            written.append(viz.save_figure(fig, png, overwrite=args.overwrite))
    for path in written:
        print(f"wrote {path}")
    return 0
