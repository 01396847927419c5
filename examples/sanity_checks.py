"""Sanity checks and evaluation metrics of volsal's methods on the bundled demo model.

1. Model-parameter randomisation (Adebayo et al. 2018), cascading and independent, of
   Gradient, GuidedBackprop, Deconvnet and Grad-CAM on the ``example_lesion`` case: similarity
   curves and a grid of the maps as the layers are randomised.
2. Localisation (pointing game, energy in mask, AUROC, AUPRC), sparseness and
   deletion / insertion AUC of every method on every bundled case with a lesion mask.

Writes ``sanity_*.png`` (figures) and ``sanity_results.md`` (tables). Default: the PNGs in
``docs/images/`` and the tables in ``docs/sanity_results.md``; with ``--out DIR`` both go to
``DIR``. Existing files are never replaced without ``--overwrite``. Seeded and deterministic;
about 4.5 minutes of CPU time on one core (``--quick``: one case, two methods, ~15 s).

    python examples/sanity_checks.py [--out DIR] [--overwrite] [--quick] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import math
import platform
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import volsal  # noqa: E402
from volsal import demo, metrics, viz  # noqa: E402
from volsal.errors import FileExistsRefusedError  # noqa: E402
from volsal.io import atomic_write  # noqa: E402
from volsal.sanity import check_parameter_randomization  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SANITY_CASE = "example_lesion"
TARGET = 1  # "lesion"
CURVE_METRICS = ("spearman_abs", "spearman", "ssim", "hog", "topk")
TOLERANCE = 2  # pointing-game tolerance in voxels (6 mm at 3 mm voxels)
# sensitivity maps whose sign carries no evidence: ranked and scored by |map|
ABS_METHODS = ("Gradient", "GuidedBackprop", "Deconvnet", "SmoothGrad")
MAP_COLUMNS = (  # cascading steps shown in the map grid (label = deepest layer randomised)
    "classifier",
    "features.block4.conv",
    "features.block3.conv",
    "features.block1.conv",
)
FIGURES = (
    "sanity_cascading_curves.png",
    "sanity_independent_curves.png",
    "sanity_cascading_maps.png",
)
TABLE = "sanity_results.md"
DPI = 90
MAP_DPI = 90


def settings(quick: bool) -> dict[str, Any]:
    """Run sizes; ``quick`` is the reduced setting used by the test."""
    if quick:
        return {
            "steps": 5,
            "ig_steps": 8,
            "sg_samples": 4,
            "methods": ("Gradient", "GradCAM"),
            "layers": slice(-2, None),  # the top two parameter layers only
            "curves": ("spearman_abs", "topk"),
        }
    return {
        "steps": 20,
        "ig_steps": 16,
        "sg_samples": 10,
        "methods": None,
        "layers": None,
        "curves": CURVE_METRICS,
    }


def sanity_methods(model: torch.nn.Module) -> dict[str, Any]:
    """The methods of the randomisation check."""
    return {
        "Gradient": volsal.Gradient(model),
        "GuidedBackprop": volsal.GuidedBackprop(model),
        "Deconvnet": volsal.Deconvnet(model),
        "GradCAM": volsal.GradCAM(model, layer=demo.DEMO_LAYER),
    }


def metric_methods(model: torch.nn.Module, cfg: dict[str, Any]) -> dict[str, Any]:
    """Every method of the metric tables."""
    layer = demo.DEMO_LAYER
    methods = {
        **sanity_methods(model),
        "GradCAM++": volsal.GradCAMPlusPlus(model, layer=layer),
        "HiResCAM": volsal.HiResCAM(model, layer=layer),
        "InputXGradient": volsal.InputXGradient(model),
        "IntegratedGradients": volsal.IntegratedGradients(model, n_steps=cfg["ig_steps"]),
        "SmoothGrad": volsal.SmoothGrad(volsal.Gradient(model), n_samples=cfg["sg_samples"]),
        "FullGrad": volsal.FullGrad(model),
    }
    if cfg["methods"]:
        methods = {k: v for k, v in methods.items() if k in cfg["methods"]}
    return methods


# -- 1. parameter randomisation ------------------------------------------------------------------
def run_randomisation(model, x, methods, cfg, seed):
    """``{mode: {method: RandomizationResult}}`` for cascading and independent mode."""
    return {
        mode: {
            name: check_parameter_randomization(
                m, x, TARGET, mode=mode, layers=cfg["layers"], metrics=cfg["curves"], seed=seed
            )
            for name, m in methods.items()
        }
        for mode in ("cascading", "independent")
    }


def curves_figure(results: dict[str, Any], mode: str) -> Figure:
    n = len(results)
    fig = Figure(figsize=(3.9 * n, 3.6), layout="constrained")
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for ax, res in zip(axes, results.values()):
        res.plot_curve(ax=ax)
        ax.set_ylim(-0.4, 1.05)
    for ax in axes[1:]:
        ax.get_legend().remove()  # the same metrics in every panel: one legend is enough
    for ax, name in zip(axes, results):
        ax.set_title(f"{name}: {mode}", fontsize=9)
    fig.suptitle(
        f"{mode} randomisation, demo model, {SANITY_CASE}: similarity to the trained map",
        fontsize=10,
    )
    return fig


def maps_figure(results: dict[str, Any], x: torch.Tensor, affine: np.ndarray, k: int) -> Figure:
    n = len(results)
    fig = Figure(figsize=(10, 2.0 * n), layout="constrained")
    subfigs = fig.subfigures(n, 1, squeeze=False)[:, 0]
    for sub, (name, res) in zip(subfigs, results.items()):
        keep = ["original"] + [c for c in MAP_COLUMNS if c in res.maps]
        maps = {}
        for c in keep:
            m = res.maps[c][0].abs().sum(0)
            maps["trained" if c == "original" else f"to {c.removeprefix('features.')}"] = (
                m / m.max().clamp_min(1e-30)
            )
        viz.compare(
            x[0],
            maps,
            affine=affine,
            axis="axial",
            slices=k,
            units="|map| / max",
            input_title=name,
            fig=sub,
        )
    fig.suptitle(
        "cascading randomisation: |map| / max; 'to L': output layer down to L randomised; "
        f"axial slice {k}",
        fontsize=10,
    )
    return fig


def save_palette_png(fig: Figure, path: Path, overwrite: bool) -> Path:
    """Save as a 256-colour palette PNG, atomically: maps of voxel-sized speckle compress badly
    as RGBA (about 2.5 times larger)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=MAP_DPI)
    img = Image.open(buf).convert("RGB").quantize(256)
    return atomic_write(path, lambda tmp: img.save(tmp, format="png", optimize=True), overwrite)


# -- 2. metrics ----------------------------------------------------------------------------------
def score_map(name: str, attr: torch.Tensor) -> torch.Tensor:
    return attr.abs() if name in ABS_METHODS else attr


def case_metrics(model, x, mask, attr, steps) -> dict[str, float]:
    kw = {"steps": steps, "softmax": True, "batch_size": 16}
    vals = {
        "pointing": metrics.pointing_game(attr, mask, tolerance=TOLERANCE).float(),
        "energy": metrics.energy_in_mask(attr, mask),
        "AUROC": metrics.auroc(attr, mask),
        "AUPRC": metrics.auprc(attr, mask),
        "Gini": metrics.sparseness(attr),
        "deletion": metrics.deletion_auc(model, x, attr, TARGET, **kw),
        "insertion": metrics.insertion_auc(model, x, attr, TARGET, **kw),
    }
    return {k: float(v[0]) for k, v in vals.items()}


METRIC_COLUMNS = (
    ("pointing", "pointing game ↑"),
    ("energy", "energy in mask ↑"),
    ("AUROC", "AUROC ↑"),
    ("AUPRC", "AUPRC ↑"),
    ("Gini", "Gini sparseness"),
    ("deletion", "deletion AUC ↓"),
    ("insertion", "insertion AUC ↑"),
)


def run_metrics(model, cases, methods, cfg, seed):
    """``[(case, method, {metric: value}), ...]``, plus a random map and the mask as references."""
    rows = []
    for case, (x, mask) in cases.items():
        for name, method in methods.items():
            attr = score_map(name, method(x, TARGET).detach())
            rows.append((case, name, case_metrics(model, x, mask, attr, cfg["steps"])))
        gen = torch.Generator().manual_seed(seed)
        rand = torch.rand(x.shape, generator=gen)
        rows.append((case, "random map", case_metrics(model, x, mask, rand, cfg["steps"])))
        oracle = mask.reshape(x.shape).float()
        rows.append((case, "lesion mask", case_metrics(model, x, mask, oracle, cfg["steps"])))
    return rows


# -- markdown ------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.3f}"


def metrics_table(rows, per_case: bool) -> list[str]:
    head = (["case"] if per_case else []) + ["method"] + [t for _, t in METRIC_COLUMNS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * (1 + per_case) + "--:|" * 7]
    if per_case:
        for case, name, vals in rows:
            cells = [case, name] + [_fmt(vals[k]) for k, _ in METRIC_COLUMNS]
            out.append("| " + " | ".join(cells) + " |")
        return out
    names = list(dict.fromkeys(name for _, name, _ in rows))
    for name in names:
        vals = [v for _, n, v in rows if n == name]
        cells = [name] + [_fmt(float(np.nanmean([v[k] for v in vals]))) for k, _ in METRIC_COLUMNS]
        out.append("| " + " | ".join(cells) + " |")
    return out


def summary_table(results: dict[str, dict[str, Any]]) -> list[str]:
    names = next(iter(results["cascading"].values())).metric_names
    out = ["| method | mode | " + " | ".join(names) + " |", "|---|---|" + "--:|" * len(names)]
    for name, res in results["cascading"].items():
        cells = [_fmt(res.table[-1][m]) for m in names]
        out.append(f"| {name} | cascading, all layers | " + " | ".join(cells) + " |")
    for name, res in results["independent"].items():
        cells = [_fmt(min(r[m] for r in res.table)) for m in names]
        out.append(f"| {name} | independent, lowest | " + " | ".join(cells) + " |")
    return out


def _para(text: str) -> list[str]:
    return textwrap.wrap(text, width=95, break_long_words=False, break_on_hyphens=False) + [""]


def markdown(results, rows, cfg, seed, command, n_cases) -> str:
    versions = (
        f"volsal {volsal.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}"
    )
    n_methods = len({n for _, n, _ in rows}) - 2
    layers = "every parameter layer" if cfg["layers"] is None else "the top two layers"
    lines = [
        "# Sanity checks and metrics on the volsal demo model",
        "",
        *_para(
            f"Produced by `{command}` (seed {seed}; {versions}; CPU) on the bundled demo model "
            f"(`volsal.demo.load_demo_model()`, Grad-CAM layer `{demo.DEMO_LAYER}`), target "
            'class 1 ("lesion"). Figures: `images/sanity_*.png`. Documentation: '
            "[sanity.md](sanity.md). Deterministic: a re-run gives the same numbers."
        ),
        *_para(
            "Settings, reduced to keep the run short on one CPU core: deletion / insertion "
            f"with {cfg['steps']} steps (baseline 0 = background; scores are softmax "
            f"probabilities), IntegratedGradients `n_steps={cfg['ig_steps']}` (zero baseline), "
            f"SmoothGrad `n_samples={cfg['sg_samples']}` (noise 15 %); pointing game tolerance "
            f"{TOLERANCE} voxels (6 mm). The sensitivity maps ({', '.join(ABS_METHODS)}) are "
            "scored as `|map|`, the others signed (the metrics sum channels with their sign). "
            "Reference rows: `random map` (uniform noise, seeded: chance level) and `lesion mask` "
            "(the mask itself as the map: perfect localisation; its Gini index is not meaningful)."
        ),
        "## Parameter randomisation (Adebayo et al. 2018)",
        "",
        *_para(
            f'Case `{SANITY_CASE}`, Gaussian re-draw (`init="gaussian"`) of {layers}. '
            "Similarity of the randomised model's map to the trained model's after the full "
            "cascade, and the lowest value over the single-layer (independent) "
            "randomisations. 1 = unchanged; a map that explains the model should fall towards 0."
        ),
        *summary_table(results),
        "",
    ]
    for mode in ("cascading", "independent"):
        for name, res in results[mode].items():
            lines += [f"### {name}, {mode}", "", res.to_markdown(), ""]
    lines += [
        f"## Localisation and faithfulness, mean over {n_cases} case(s) with a lesion mask",
        "",
        f"{n_methods} methods; ↑ higher is better, ↓ lower is better.",
        "",
        *metrics_table(rows, per_case=False),
        "",
        "## Per case",
        "",
        *metrics_table(rows, per_case=True),
        "",
    ]
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------
def output_paths(out: Path | None) -> tuple[list[Path], Path]:
    img_dir = out if out is not None else ROOT / "docs" / "images"
    table = out / TABLE if out is not None else ROOT / "docs" / TABLE
    return [img_dir / f for f in FIGURES], table


def load_cases(names: Sequence[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    cases = {}
    for name in names:
        x, _affine, mask = demo.load_demo_case(name)
        if mask is not None and bool(mask.any()):
            cases[name] = (x, mask)
    return cases


def main(argv: Sequence[str] | None = None, log: Callable[[str], Any] = print) -> int:
    """Run everything and write the files; returns 0, or 1 when a file exists already."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for PNGs and table")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--quick", action="store_true", help="one case, two methods, few steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    figures, table = output_paths(args.out)
    existing = [p for p in [*figures, table] if p.exists()]
    if existing and not args.overwrite:
        log(f"refusing to overwrite {[str(p) for p in existing]}; pass --overwrite.")
        return 1
    for p in [*figures, table]:
        p.parent.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    cfg = settings(args.quick)
    model = demo.load_demo_model()
    x, affine, mask = demo.load_demo_case(SANITY_CASE)
    k_slice = int(torch.nonzero(mask).float().mean(0).round()[2])  # axial slice of the lesion

    smethods = sanity_methods(model)
    if cfg["methods"]:
        smethods = {k: v for k, v in smethods.items() if k in cfg["methods"]}
    results = run_randomisation(model, x, smethods, cfg, args.seed)
    log(f"randomisation checks: {time.perf_counter() - t0:.1f} s")

    names = [SANITY_CASE] if args.quick else demo.list_demo_cases()
    cases = load_cases(names)
    rows = run_metrics(model, cases, metric_methods(model, cfg), cfg, args.seed)
    log(f"metrics: {time.perf_counter() - t0:.1f} s")

    cmd_args = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python examples/sanity_checks.py", *cmd_args])
    text = markdown(results, rows, cfg, args.seed, command, len(cases))
    written = [
        viz.save_figure(
            curves_figure(results["cascading"], "cascading"),
            figures[0],
            overwrite=args.overwrite,
            dpi=DPI,
        ),
        viz.save_figure(
            curves_figure(results["independent"], "independent"),
            figures[1],
            overwrite=args.overwrite,
            dpi=DPI,
        ),
        save_palette_png(
            maps_figure(results["cascading"], x, affine, k_slice), figures[2], args.overwrite
        ),
        atomic_write(
            table, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=args.overwrite
        ),
    ]
    for p in written:
        log(str(p))
    log(f"total: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FileExistsRefusedError as err:  # created by someone else while we computed
        print(err, file=sys.stderr)
        sys.exit(1)
