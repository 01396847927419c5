"""``volsal demo``: explain the bundled 3D lesion classifier on a bundled brain MRI volume.

Writes into ``--out`` (default ``volsal-demo/``): the input volume and one heatmap per method as
NIfTI on the volume's grid (same affine: they overlay exactly in ITK-SNAP, 3D Slicer, FSLeyes),
each with a JSON sidecar, and PNG slice montages with the maps over the anatomy. Nothing is
overwritten unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

DEFAULT_METHODS = ("gradcam", "hirescam", "gradient")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="explain the bundled 3D demo model on a bundled MRI volume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="volsal-demo", help="output folder (default: volsal-demo)")
    p.add_argument("--case", default="example_lesion", help="bundled case to explain")
    p.add_argument(
        "--method",
        action="append",
        dest="methods",
        help=f"method(s) to run (repeatable; default: {', '.join(DEFAULT_METHODS)})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import demo, io, viz
    from ..methods import REGISTRY, get_method

    out = Path(args.out)
    methods = args.methods or [m for m in DEFAULT_METHODS if m in REGISTRY]
    infos = [get_method(name) for name in methods]  # unknown names fail before any work
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / "input.nii.gz"] + [
        out / f"{info.name}{suffix}"
        for info in infos
        for suffix in (".nii.gz", ".json", "_axial.png", "_orthogonal.png")
    ]
    for path in targets:  # refuse before computing anything, not half-way through
        io.check_writable(path, args.overwrite)
    model = demo.load_demo_model()
    x, affine, mask = demo.load_demo_case(args.case)
    scan = io.Scan(data=x[0], affine=affine)
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    pred = int(probs.argmax())
    names = ("no lesion", "lesion")
    print(f"case {args.case}: predicted class {pred} ({names[pred]}), p = {float(probs[pred]):.3f}")

    written = [
        io.save_like(x[0, 0], scan, out / "input.nii.gz", overwrite=args.overwrite, sidecar=False)
    ]
    for info in infos:
        method = (
            info.cls(model, layer=demo.DEMO_LAYER)
            if info.kind == "cam" and _takes_layer(info.cls)
            else info.cls(model)
        )
        exp = method.explain(x, target=pred)
        heat = exp.maps[0].sum(0) if exp.maps.shape[1] > 1 else exp.maps[0, 0]
        written.append(
            io.save_like(
                heat, scan, out / f"{info.name}.nii.gz", overwrite=args.overwrite, explanation=exp
            )
        )
        fig = viz.plot_slices(
            scan,
            heat,
            axis="axial",
            n=6,
            pick="peak",
            title=f"{info.cls.__name__}, class {pred} ({names[pred]})",
        )
        written.append(
            viz.save_figure(fig, out / f"{info.name}_axial.png", overwrite=args.overwrite)
        )
        fig = viz.plot_orthogonal(
            scan, heat, at="peak", title=f"{info.cls.__name__} through its peak"
        )
        written.append(
            viz.save_figure(fig, out / f"{info.name}_orthogonal.png", overwrite=args.overwrite)
        )
    for path in written:
        print(f"wrote {path}")
    if mask is not None:
        print(f"(the lesion mask of this case: {demo.case_path(args.case, mask=True)})")
    return 0


def _takes_layer(cls) -> bool:
    import inspect

    return "layer" in inspect.signature(cls.__init__).parameters
