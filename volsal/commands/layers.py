"""``volsal layers``: the model's modules with their output shapes, CAM candidates marked."""

from __future__ import annotations

import argparse

import torch

from ..errors import ParameterError
from .model_loading import add_model_arguments, load_model_from_args


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "layers",
        help="list modules, output shapes and CAM layer candidates",
        description="Runs one no-grad forward on a zero input of the given shape and lists every "
        "module in call order with its output shape. '*' marks candidate CAM layers (output "
        "keeps the input's spatial rank with more than one voxel); '<- auto' the layer "
        "layer='auto' would pick.",
    )
    add_model_arguments(p)
    p.add_argument(
        "--input-shape",
        required=True,
        help="input shape B,C,*spatial, e.g. 1,1,96,96,96",
    )
    p.add_argument("--device", default="cpu")
    return p


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ParameterError(
            f"--input-shape must be integers like 1,1,96,96,96; got {text!r}."
        ) from None
    if len(shape) not in (4, 5) or min(shape) < 1:
        raise ParameterError(
            f"--input-shape must be B,C,H,W or B,C,D,H,W with positive sizes; got {text!r}."
        )
    return shape


def run(args: argparse.Namespace) -> int:
    from ..hooks import eval_mode
    from ..layers import auto_layer, probe_outputs

    shape = parse_shape(args.input_shape)
    model = load_model_from_args(args, args.device)
    x = torch.zeros(shape, device=args.device)
    with eval_mode(model):
        records = probe_outputs(model, x)
        try:
            auto = auto_layer(model, x)
        except LookupError:
            auto = None
    width = max((len(r.name) for r in records), default=10)
    print(f"{'':2}{'layer':<{width}}  {'type':<24} output")
    for r in records:
        cand = r.shape is not None and len(r.shape) == len(shape)
        cand = cand and torch.Size(r.shape[2:]).numel() > 1
        mark = "*" if cand else " "
        calls = f"  ({r.calls} calls)" if r.calls > 1 else ""
        tail = "  <- auto" if r.name == auto else ""
        out = "x".join(map(str, r.shape)) if r.shape else "(not a tensor)"
        print(f"{mark} {r.name:<{width}}  {r.type:<24} {out}{calls}{tail}")
    return 0
