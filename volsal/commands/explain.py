"""``volsal explain``: explain a model's decision on a scan and write the maps on the scan's grid.

The scan is loaded with its geometry, preprocessed as the model expects (built-in flags, or
``--preprocess pkg.module:function`` returning a MONAI array transform), explained by one or
more methods (one model load, one preprocessing), and every map is brought back to the
*source* scan's grid (``volsal.io.to_source`` inverts the preprocessing) and written as NIfTI
(or NRRD/MHA) with the scan's affine and a JSON sidecar (``volsal.io.save_like``).

Every output path is planned and checked before any work: existing files are refused unless
``--overwrite``, and two methods never write the same file. Maps are computed for all methods
first and written afterwards, so a method that fails leaves no partial set of files.

Exit codes: 0 success; 2 usage errors (bad flags or values, unknown method or layer, bad
target, refused overwrite); 1 other errors (unreadable scan or model, model failure).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ParameterError, TargetError, VolsalError
from .model_loading import add_model_arguments, load_model_from_args

__all__ = ["add_parser", "run", "build_transform", "plan_outputs", "ModelRunError"]

log = logging.getLogger("volsal")

_MAP_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")


class ModelRunError(VolsalError, RuntimeError):
    """The model (or a method on it) failed on the preprocessed scan (exit code 1)."""


# ------------------------------------------------------------------------------- parser
def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "explain",
        help="explain a scan and write the maps on its grid",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument(
        "--input",
        required=True,
        nargs="+",
        help="scan(s): .nii/.nii.gz/.nrrd/.mha/.mhd or DICOM series folders; several scans (a "
        "cohort) are explained with one model load and need --out-dir",
    )
    p.add_argument(
        "--volume",
        type=int,
        default=None,
        metavar="N",
        help="for a 4D series: the volume to explain (0-based)",
    )
    p.add_argument(
        "--as-channels",
        action="store_true",
        help="for a 4D series: stack all volumes as input channels",
    )
    p.add_argument(
        "--method",
        action="append",
        dest="methods",
        metavar="NAME",
        help="method name, repeatable or comma-separated (default gradcam); "
        "`volsal methods` lists them",
    )
    p.add_argument(
        "--target",
        default=None,
        help="class index to explain (default: the predicted class)",
    )
    p.add_argument(
        "--layer",
        default=None,
        help="layer for CAM methods (default: auto); `volsal layers` lists the names",
    )
    p.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option (repeatable), given to every selected method that accepts it; "
        "VALUE is read as JSON when it parses (e.g. --opt n_steps=32 --opt window=8)",
    )
    p.add_argument(
        "--smooth-base",
        default="gradient",
        metavar="NAME",
        help="the method smoothgrad averages (default gradient)",
    )
    p.add_argument(
        "--keep-channels",
        action="store_true",
        help="write one map channel per input channel (default: channels summed)",
    )
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--out",
        default=None,
        help="map file (.nii.gz/.nii/.nrrd/.mha); with several methods the method name is "
        "appended to the file name",
    )
    o.add_argument(
        "--out-dir",
        default=None,
        help="folder for <scan>_<method>.nii.gz (created if missing; default: current folder)",
    )
    o.add_argument(
        "--png", default=None, help="also write a slice-montage PNG overlay (one per method)"
    )
    o.add_argument("--overwrite", action="store_true", help="replace existing output files")
    o.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    g = p.add_argument_group("preprocessing (applied in this order, inverted for the maps)")
    g.add_argument("--orientation", default=None, help="axis codes, e.g. RAS")
    g.add_argument("--spacing", default=None, help="voxel size in mm, e.g. 2 or 1.5,1.5,3")
    g.add_argument("--size", default=None, help="network input size, e.g. 96 or 96,96,64")
    g.add_argument(
        "--intensity",
        choices=("none", "minmax", "zscore"),
        default="none",
        help="intensity scaling: minmax to [0, 1], or z-score (default none)",
    )
    g.add_argument(
        "--preprocess",
        default=None,
        metavar="PKG.MODULE:FUNCTION",
        help="a function returning a MONAI array transform (replaces the flags above)",
    )
    return p


# ------------------------------------------------------------------------------- values
def _numbers(text: str, n: int, what: str, kind: type = float) -> tuple:
    """``"2"`` -> ``(2,) * n``; ``"1,2,3"`` -> ``(1, 2, 3)``; checked count and sign."""
    try:
        vals = tuple(kind(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ParameterError(
            f"{what} must be {'integers' if kind is int else 'numbers'} separated by commas "
            f"(one value, or {n}); got {text!r}."
        ) from None
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise ParameterError(
            f"{what} needs 1 or {n} values for this {n}D scan; got {len(vals)} ({text!r})."
        )
    if any(v <= 0 for v in vals):
        raise ParameterError(f"{what} values must be positive; got {text!r}.")
    return vals


def parse_target(text: str | None) -> int | None:
    if text is None or text.lower() in ("pred", "predicted", "auto"):
        return None
    try:
        t = int(text)
    except ValueError:
        raise TargetError(
            f"--target must be a class index (an integer such as 1) or 'pred'; got {text!r}."
        ) from None
    if t < 0:
        raise TargetError(f"--target must be >= 0; got {t}.")
    return t


def parse_options(items: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ParameterError(f"--opt must look like KEY=VALUE (e.g. n_steps=32); got {item!r}.")
        try:
            opts[key] = json.loads(raw)
        except json.JSONDecodeError:
            opts[key] = raw
    return opts


def parse_device(text: str) -> torch.device:
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ParameterError(
            f"--device {text!r} is not a device; use cpu, cuda or cuda:N."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError("--device cuda: CUDA is not available here; use --device cpu.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ParameterError(
                f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) are visible."
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError("--device mps: MPS is not available here; use --device cpu.")
    return dev


# ------------------------------------------------------------------------------- transform
def _import_function(spec: str, flag: str):
    if ":" not in spec:
        raise ParameterError(f"{flag} must look like 'package.module:function'; got {spec!r}.")
    modname, fname = spec.split(":", 1)
    try:
        mod = importlib.import_module(modname)
    except ImportError as err:
        raise ParameterError(
            f"cannot import {modname!r} for {flag}: {err}. Is it on PYTHONPATH?"
        ) from None
    fn = getattr(mod, fname, None)
    if not callable(fn):
        raise ParameterError(f"{modname!r} has no callable {fname!r} (from {flag}).")
    return fn


def build_transform(args: argparse.Namespace, spatial_dims: int):
    """The MONAI array transform the flags describe (``None`` when there is none).

    Raises:
        ParameterError: bad flag values, or ``--preprocess`` combined with the flags.
    """
    from monai.transforms import (
        Compose,
        NormalizeIntensity,
        Orientation,
        Resize,
        ScaleIntensity,
        Spacing,
    )

    flags = [
        f
        for f, v in (
            ("--orientation", args.orientation),
            ("--spacing", args.spacing),
            ("--size", args.size),
            ("--intensity", None if args.intensity == "none" else args.intensity),
        )
        if v
    ]
    if args.preprocess:
        if flags:
            raise ParameterError(
                f"--preprocess replaces the preprocessing flags; drop {', '.join(flags)} "
                "(or put those steps in your transform)."
            )
        fn = _import_function(args.preprocess, "--preprocess")
        try:
            transform = fn()
        except Exception as err:  # noqa: BLE001 - user code: report plainly
            raise ParameterError(
                f"--preprocess {args.preprocess}() failed: {type(err).__name__}: {err}"
            ) from None
        if not callable(transform):
            raise ParameterError(
                f"--preprocess {args.preprocess}() returned a {type(transform).__name__}, not a "
                "transform; return e.g. monai.transforms.Compose([...]) of array transforms."
            )
        return transform
    steps = []
    if args.orientation:
        codes = args.orientation.upper()
        if (
            len(codes) != spatial_dims
            or any(c not in "LRAPSI" for c in codes)
            or len({_axis_of(c) for c in codes}) != spatial_dims
        ):
            raise ParameterError(
                f"--orientation needs {spatial_dims} letters, one from each of L/R, A/P"
                f"{', S/I' if spatial_dims == 3 else ''} (e.g. {'RAS' if spatial_dims == 3 else 'RA'}"
                f"); got {args.orientation!r}."
            )
        steps.append(Orientation(axcodes=codes, labels=None))
    if args.spacing:
        pixdim = _numbers(args.spacing, spatial_dims, "--spacing")
        steps.append(Spacing(pixdim=pixdim, mode="bilinear"))
    if args.size:
        size = _numbers(args.size, spatial_dims, "--size", int)
        steps.append(
            Resize(spatial_size=size, mode="trilinear" if spatial_dims == 3 else "bilinear")
        )
    if args.intensity == "minmax":
        steps.append(ScaleIntensity(minv=0.0, maxv=1.0))
    elif args.intensity == "zscore":
        steps.append(NormalizeIntensity())
    return Compose(steps) if steps else None


def _axis_of(code: str) -> int:
    return next(i for i, pair in enumerate(("LR", "AP", "SI")) if code in pair)


def preprocess(scan, transform, args: argparse.Namespace):
    """The network input: a ``(C, *spatial)`` ``MetaTensor`` recording the preprocessing."""
    from monai.data import MetaTensor

    from .. import io

    net_in = io.to_metatensor(scan)
    if transform is None:
        return net_in
    what = f"--preprocess {args.preprocess}" if args.preprocess else "the preprocessing"
    try:
        out = transform(net_in)
    except Exception as err:  # noqa: BLE001 - MONAI / user transforms raise anything
        raise ParameterError(
            f"{what} failed on {args.input} (shape {tuple(scan.data.shape)}): "
            f"{type(err).__name__}: {err}. A --preprocess function must return a MONAI *array* "
            "transform taking a (C, *spatial) MetaTensor (not a dictionary transform)."
        ) from None
    if isinstance(out, (list, tuple)):
        raise ParameterError(
            f"{what} returned {len(out)} images (a sampling transform?); it must return one."
        )
    if not isinstance(out, torch.Tensor):
        raise ParameterError(
            f"{what} returned a {type(out).__name__}; it must return a (C, *spatial) tensor."
        )
    if not isinstance(out, MetaTensor):
        if tuple(out.shape) == tuple(scan.data.shape):
            return MetaTensor(out, affine=net_in.affine, meta=dict(net_in.meta))
        raise ParameterError(
            f"{what} returned a plain tensor of shape {tuple(out.shape)}: the geometry needed "
            "to bring the maps back to the scan is lost. Use MONAI transforms with metadata "
            "tracking on (monai.data.set_track_meta(True), the default)."
        )
    if out.ndim != scan.data.ndim:
        raise ParameterError(
            f"{what} returned shape {tuple(out.shape)}; expected (C, *spatial) like the scan's "
            f"{tuple(scan.data.shape)}."
        )
    return out


# ------------------------------------------------------------------------------- methods
@dataclass
class Plan:
    """One method to run and where its outputs go."""

    info: Any
    options: dict[str, Any]
    out: Path
    png: Path | None


def _accepts(cls: type) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    return params


def _method_options(info, args, opts: dict[str, Any], used: set[str]) -> dict[str, Any]:
    params = _accepts(info.cls)
    kwargs: dict[str, Any] = {}
    if args.layer is not None and "layer" in params:
        default = params["layer"].default
        if not (args.layer == "auto" and default != "auto"):
            kwargs["layer"] = args.layer
    for key, val in opts.items():
        if key in params and key not in ("model", "method", "self"):
            kwargs[key] = val
            used.add(key)
    missing = [
        name
        for name, p in list(params.items())[1:]
        if p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in kwargs
    ]
    if missing:
        raise ParameterError(
            f"method {info.name} needs {', '.join(missing)}; pass "
            + " ".join(f"--opt {m}=VALUE" for m in missing)
            + "."
        )
    return kwargs


def _suffix(path: Path) -> str:
    from ..io.atomic import full_suffix

    return full_suffix(path)


def _with_tag(path: Path, tag: str) -> Path:
    suf = _suffix(path)
    stem = path.name[: len(path.name) - len(suf)] if suf else path.name
    return path.with_name(f"{stem}_{tag}{suf}")


def plan_outputs(args: argparse.Namespace, infos: list) -> list[tuple[Path, Path | None]]:
    """``(map path, png path or None)`` per method; checks suffixes, clashes and overwrites.

    Raises:
        ParameterError: bad suffix, missing folder, two methods writing one file, an output
            that is the input. FileExistsRefusedError: an output exists (without --overwrite).
    """
    from ..io import sidecar_path
    from ..io.atomic import check_writable

    if args.out and args.out_dir:
        raise ParameterError("give either --out FILE or --out-dir FOLDER, not both.")
    stem = Path(args.input.rstrip("/\\")).name
    suf = _suffix(Path(stem))
    stem = stem[: len(stem) - len(suf)] if suf else stem
    several = len(infos) > 1
    plans = []
    for info in infos:
        if args.out:
            out = Path(args.out)
            if several:
                out = _with_tag(out, info.name)
        else:
            out = Path(args.out_dir or ".") / f"{stem}_{info.name}.nii.gz"
        png = None
        if args.png:
            png = Path(args.png)
            if getattr(args, "cohort", False):
                png = _with_tag(png, stem)
            if several:
                png = _with_tag(png, info.name)
        plans.append((out, png))
    if args.out and _suffix(Path(args.out)) not in _MAP_SUFFIXES:
        raise ParameterError(
            f"--out {args.out}: unsupported map format {_suffix(Path(args.out)) or '(none)'!r}; "
            f"use one of {', '.join(_MAP_SUFFIXES)}."
        )
    if args.png and Path(args.png).suffix.lower() not in (".png", ".pdf", ".svg", ".jpg"):
        raise ParameterError(f"--png {args.png}: give a file name ending in .png.")
    files: dict[Path, str] = {}
    src = Path(args.input).resolve()
    for info, (out, png) in zip(infos, plans):
        for f in (out, sidecar_path(out), png):
            if f is None:
                continue
            key = f.resolve()
            if key == src:
                raise ParameterError(f"{f} is the input scan; choose another output path.")
            if key in files:
                raise ParameterError(
                    f"methods {files[key]} and {info.name} would both write {f}. Give each "
                    "method once, or use --out-dir."
                )
            files[key] = info.name
    folders = {f.parent for f in files}
    for folder in folders:
        if not folder.is_dir():
            if args.out_dir and folder == Path(args.out_dir).resolve():
                continue  # created before writing
            raise ParameterError(f"output folder {folder} does not exist; create it first.")
    for f in files:
        check_writable(f, args.overwrite)
    return plans


def _method_names(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for item in (args.methods or ["gradcam"]) for n in item.split(",")]
    names = [n for n in names if n]
    if not names:
        raise ParameterError("--method needs a name; `volsal methods` lists them.")
    return names


def _lookup_method(name: str):
    """``get_method`` with a "did you mean" for near misses."""
    import difflib

    from ..methods import get_method, method_names

    try:
        return get_method(name)
    except ParameterError as err:
        close = difflib.get_close_matches(name.lower(), method_names(), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ParameterError(f"{err}{hint} `volsal methods` lists them.") from None


def _check_layer(model, layer: str | None, infos: list, smooth_base: str) -> None:
    """Fail fast (before any forward) on an unknown --layer name."""
    if layer is None or layer == "auto":
        return
    classes = [_lookup_method(smooth_base).cls if i.name == "smoothgrad" else i.cls for i in infos]
    takers = [c for c in classes if "layer" in _accepts(c)]
    if not takers:
        log.warning("--layer is ignored: none of %s takes a layer.", [i.name for i in infos])
        return
    if isinstance(model, torch.jit.ScriptModule):
        return  # the method reports that TorchScript cannot be hooked
    from ..layers import resolve_layer

    resolve_layer(model, layer)


def build_method(info, model, args, kwargs: dict[str, Any], opts: dict[str, Any]):
    """An instance of the method; smoothgrad wraps ``--smooth-base`` (options it does not take
    itself go to the wrapped method)."""
    if info.name == "smoothgrad":
        base_info = _lookup_method(args.smooth_base)
        if base_info.name == "smoothgrad":
            raise ParameterError("--smooth-base cannot be smoothgrad itself.")
        own = _accepts(info.cls)
        rest = {k: v for k, v in opts.items() if k not in own}
        base_kwargs = _method_options(base_info, args, rest, set())
        return info.cls(base_info.cls(model, **base_kwargs), **kwargs)
    return info.cls(model, **kwargs)


@contextlib.contextmanager
def _count_forwards(model, bar, name: str) -> Iterator[None]:
    """Show the number of model forward passes in the progress bar while a method runs."""
    if bar.disable:
        yield
        return
    count, last = [0], [0.0]

    def hook(module, inputs, output):
        if module is model:
            count[0] += 1
            now = time.monotonic()
            if now - last[0] > 0.2:  # redraw at most 5 times a second
                last[0] = now
                bar.set_postfix_str(f"{name}, forward passes: {count[0]}", refresh=True)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _to_map(exp, keep_channels: bool) -> torch.Tensor:
    m = exp.maps[0].detach()
    if m.shape[0] > 1 and not keep_channels:
        m = m.sum(0, keepdim=True)
    return m.float().cpu()


# ------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    # everything checkable without work first: flags, method names, output paths
    names = _method_names(args)
    infos = [_lookup_method(m) for m in names]
    seen: dict[str, str] = {}
    for given, info in zip(names, infos):
        if info.name in seen:
            raise ParameterError(
                f"--method {info.name} is given twice ({seen[info.name]!r} and {given!r}); "
                "both would write the same files. Give each method once."
            )
        seen[info.name] = given
    inputs = list(args.input) if isinstance(args.input, (list, tuple)) else [args.input]
    if len(inputs) > 1 and args.out:
        raise ParameterError(
            f"{len(inputs)} inputs: give --out-dir FOLDER (one <scan>_<method>.nii.gz per scan "
            "and method), not --out FILE."
        )
    if len(set(_scan_stem(i) for i in inputs)) < len(inputs):
        raise ParameterError(
            "two inputs have the same file name, so their maps would collide in --out-dir; "
            "rename them or explain them in separate runs."
        )
    per_scan = []  # every output of every scan checked before any work
    for path in inputs:
        one = argparse.Namespace(**{**vars(args), "input": path, "cohort": len(inputs) > 1})
        per_scan.append((one, plan_outputs(one, infos)))

    target = parse_target(args.target)
    opts = parse_options(args.opt)
    device = parse_device(args.device)
    used: set[str] = set()
    kwargs_per = [_method_options(i, args, opts, used) for i in infos]
    if "smoothgrad" in [i.name for i in infos]:
        used.update(k for k in opts if k in _accepts(_lookup_method(args.smooth_base).cls))
    unused = sorted(set(opts) - used)
    if unused:
        raise ParameterError(
            f"--opt {', '.join(unused)}: not an option of {', '.join(i.name for i in infos)}. "
            "See the method's docstring, e.g. python -c 'import volsal; help(volsal.GradCAM)'."
        )

    model = load_model_from_args(args, device)
    _check_layer(model, args.layer, infos, args.smooth_base)
    methods = [build_method(i, model, args, kw, opts) for i, kw in zip(infos, kwargs_per)]
    for one, one_plans in per_scan:
        if len(per_scan) > 1:
            print(f"== {one.input}")
        _explain_scan(one, infos, methods, model, target, one_plans, device, tqdm)
    return 0


def _scan_stem(path: str) -> str:
    stem = Path(str(path).rstrip("/\\")).name
    suf = _suffix(Path(stem))
    return stem[: len(stem) - len(suf)] if suf else stem


def _explain_scan(args, infos, methods, model, target, plans, device, tqdm) -> None:
    """Load, preprocess and explain one scan with every method; write its maps and PNGs."""
    from .. import io

    scan = _load_scan(args)
    transform = build_transform(args, scan.spatial_dims)
    net_in = preprocess(scan, transform, args)
    x = net_in.as_tensor()[None].float().to(device)

    results = []
    bar = tqdm(
        total=len(methods),
        desc="volsal explain",
        unit="method",
        file=sys.stderr,
        disable=True if args.no_progress else None,
        leave=False,
    )
    try:
        for info, method in zip(infos, methods):
            bar.set_postfix_str(info.name, refresh=True)
            with _count_forwards(model, bar, info.name):
                exp = _explain(method, x, target, info.name, tuple(x.shape))
            fmap = _to_map(exp, args.keep_channels)
            on_source = io.to_source(
                fmap,
                net_in,
                source=scan,
                transform=transform if args.preprocess else None,
            )
            results.append((info, exp, on_source))
            bar.update(1)
    finally:
        bar.close()

    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for (info, exp, on_source), (out, png) in zip(results, plans):
        written.append(
            io.save_like(on_source, scan, out, overwrite=args.overwrite, explanation=exp)
        )
        cls = "" if exp.classes is None else f"class {exp.classes.tolist()[0]}, "
        layer = f", layer {exp.layer}" if exp.layer else ""
        print(f"{info.name}: {cls}score {exp.scores.tolist()[0]:.4g}{layer}")
        if png is not None:
            written.append(_write_png(scan, on_source, png, info, exp, args.overwrite))
    for path in written:
        print(f"wrote {path}")


def _load_scan(args: argparse.Namespace):
    from .. import io
    from ..errors import ImageReadError

    try:
        return io.load(args.input, volume=args.volume, channels=args.as_channels)
    except ImageReadError as err:
        if "volume=N" in str(err):
            raise ImageReadError(
                f"{err} On the command line: --volume N or --as-channels."
            ) from None
        raise


def _explain(method, x: torch.Tensor, target, name: str, shape: tuple[int, ...]):
    try:
        return method.explain(x, target=target)
    except VolsalError:
        raise
    except RuntimeError as err:  # shape / dtype mismatches inside the model
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelRunError(
            f"{name}: the model failed on the preprocessed input of shape {shape}: {first}. "
            "Check that the input matches what the model expects (channels, --size, "
            "--spacing, --intensity) and the model's input rank (2D/3D)."
        ) from err


def _write_png(scan, on_source: torch.Tensor, png: Path, info, exp, overwrite: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from .. import viz

    cls = "" if exp.classes is None else f", class {exp.classes.tolist()[0]}"
    title = f"{info.cls.__name__}{cls}" + (f", layer {exp.layer}" if exp.layer else "")
    if scan.spatial_dims == 3:
        fig = viz.plot_slices(scan, on_source, axis="axial", pick="peak", title=title)
    else:
        sp = scan.spacing
        fig = viz.plot_overlay(scan.data, on_source, aspect=sp[0] / sp[1], title=title)
    return viz.save_figure(fig, png, overwrite=overwrite, bbox_inches="tight")
