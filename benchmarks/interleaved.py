"""Interleaved time ratios: each method against its floor, alternating calls in ONE process.

``run.py`` measures every row in its own fresh process, one after the other: the right design
for memory and for isolation, but on a shared machine the load drifts between the floor's
process and the method's, and single-pass ratios swing by +-30 %. Here the floor and the
methods of one model are called in turn (floor, m1, m2, ..., floor, m1, m2, ...), each call's
process CPU time recorded, and the ratio reported is the median over rounds of
``method time / floor time of the same round``: drift cancels out. Memory is not measured here
(use ``run.py``). Warm-up: one call of each before the rounds (CAMs trace their receptive-field
mapping then).

    python benchmarks/interleaved.py [--models resnet18_3d densenet121_3d resnet18_2d]
        [--size 64] [--rounds 7] [--only GradCAM Gradient ...] [--anchors] [--out FILE.md]

Only single-pass cases (floor ``forward_nograd`` or ``forward_backward_input``) are run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import load_cases  # noqa: E402
from benchmarks.cases._case import ANCHOR_TITLES, Skip  # noqa: E402
from benchmarks.floors import KINDS, make_floor  # noqa: E402
from benchmarks.models import MODELS, build  # noqa: E402


def _columns(model, x, cam_layer, cases, with_anchors):
    pristine = copy.deepcopy(model)
    cols = {kind: make_floor(kind, model, x, 1) for kind in KINDS}
    rows = []
    for case in cases:
        try:
            cols[f"volsal:{case.name}"] = case.volsal(model, x, 1, cam_layer)
        except Skip:
            continue
        rows.append((case, "volsal"))
        if not with_anchors:
            continue
        for anchor, spec in case.anchors.items():
            try:  # anchors may leave hooks on a model (MONAI's CAMs do): each gets a copy
                own = copy.deepcopy(pristine)
                cols[f"{anchor}:{case.name}"] = spec.factory(own, x, 1, cam_layer)
            except Exception:  # noqa: BLE001 - an anchor that cannot run is left out
                continue
            rows.append((case, anchor))
    return cols, rows


def measure(name: str, size: int, rounds: int, only: list[str] | None, with_anchors: bool):
    import torch

    torch.set_num_threads(1)
    mdef = MODELS[name]
    model, x = build(name, size if mdef.spatial_dims == 3 else 224, "cpu")
    cases = [
        c
        for c in load_cases().values()
        if c.floor in KINDS
        and (c.models is None or name in c.models)
        and (not only or c.name in only or c.family in only)
    ]
    cols, rows = _columns(model, x, mdef.cam_layer, cases, with_anchors)
    for fn in cols.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in cols}
    for _ in range(rounds):
        for key, fn in cols.items():
            t0 = time.process_time()
            fn()
            times[key].append(time.process_time() - t0)
    out = []
    for case, impl in rows:
        key = f"{impl}:{case.name}"
        ratios = [m / f for m, f in zip(times[key], times[case.floor])]
        out.append(
            (
                case.name,
                ANCHOR_TITLES.get(impl, impl),
                case.floor,
                1000 * statistics.median(times[key]),
                statistics.median(ratios),
            )
        )
    floors = {k: 1000 * statistics.median(times[k]) for k in KINDS}
    return mdef.title, x.shape, floors, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18_3d", "densenet121_3d", "resnet18_2d"])
    p.add_argument("--size", type=int, default=64, help="3D edge length (2D: 224)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--only", nargs="+", default=None, help="case names or families")
    p.add_argument("--anchors", action="store_true", help="also time MONAI / Captum")
    p.add_argument("--out", default=None, help="write the markdown table here too")
    args = p.parse_args(argv)
    lines = [
        "# Interleaved time ratios (one process, process CPU time, 1 thread)",
        "",
        f"`python benchmarks/interleaved.py {' '.join(argv or sys.argv[1:])}`; "
        f"{args.rounds} rounds; ratio = median over rounds of method / floor of the same round.",
        "",
    ]
    for name in args.models:
        title, shape, floors, rows = measure(name, args.size, args.rounds, args.only, args.anchors)
        lines += [
            f"## {title}, input {tuple(shape)}",
            "",
            "floors: " + ", ".join(f"{k} {v:.0f} ms" for k, v in floors.items()),
            "",
            "| row | library | floor | median ms | x floor (interleaved) |",
            "|---|---|---|--:|--:|",
        ]
        lines += [f"| {c} | {lib} | {f} | {ms:.0f} | {r:.2f}x |" for c, lib, f, ms, r in rows]
        lines.append("")
        print("\n".join(lines[-len(rows) - 6 :]), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
