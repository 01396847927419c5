"""Benchmark volsal's methods against their floors and against MONAI, Captum, M3d-CAM and
pytorch-grad-cam, each measurement in a fresh process.

    python benchmarks/run.py [--smoke] [--device cpu|cuda] [--only NAME ...] [--repeats N]
                             [--sizes 64 ...] [--models resnet18_3d ...] [--out DIR]

Writes ``<out>/<device>[-smoke].json`` and ``.md`` (default ``benchmarks/results/``). See
``benchmarks/README.md`` for what is measured and how.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import (  # noqa: E402
    ANCHOR_ORDER,
    ANCHOR_TITLES,
    SMOKE_ENV,
    Case,
    load_cases,
)
from benchmarks.measure import short_error  # noqa: E402
from benchmarks.models import MODELS  # noqa: E402

HERE = Path(__file__).resolve().parent
MEASURE = HERE / "measure.py"
DEFAULT_REPEATS = {"cpu": 5, "cuda": 10}
# libraries imported once by the parent in "fork" mode (each measurement is a forked child)
PRELOAD = ("torch", "monai.networks.nets", "monai.visualize", "captum.attr", "volsal")
VERSIONS = ("torch", "monai", "captum", "medcam", "grad-cam", "volsal", "numpy")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the plan --------------------------------------------------------------------------------


def select_cases(cases: dict[str, Case], only: list[str] | None) -> tuple[list[Case], set[str]]:
    """Cases matching ``--only`` (case name or family, case-insensitive), and floor names asked
    for directly."""
    if not only:
        return list(cases.values()), set()
    from benchmarks.floors import parse_floor

    names = {c.name.lower() for c in cases.values()} | {c.family.lower() for c in cases.values()}
    wanted = {w.lower() for w in only}
    chosen = [c for c in cases.values() if c.name.lower() in wanted or c.family.lower() in wanted]
    floors = set()
    for w in only:
        if w.lower() in names:
            continue
        try:
            parse_floor(w)
        except ValueError:
            raise SystemExit(
                f"--only {w!r}: no such case, family or floor; cases: {sorted(cases)}, "
                f"families: {sorted({c.family for c in cases.values()})}"
            ) from None
        floors.add(w)
    return chosen, floors


def plan_configs(args: argparse.Namespace) -> list[tuple[str, int]]:
    names = args.models or list(MODELS)
    for n in names:
        if n not in MODELS:
            raise SystemExit(f"--models: unknown model {n!r}; known: {sorted(MODELS)}")
    configs = []
    for n in names:
        mdef = MODELS[n]
        sizes = mdef.smoke_sizes if args.smoke else mdef.sizes
        if args.sizes and mdef.spatial_dims == 3 and not args.smoke:
            sizes = tuple(args.sizes)
        configs += [(n, s) for s in sizes]
    return configs


def missing_module(modules: tuple[str, ...]) -> str | None:
    """The first top-level module of ``modules`` that is not installed (no import done)."""
    for module in modules:
        top = module.split(".")[0]
        if importlib.util.find_spec(top) is None:
            return top
    return None


# --- launching one measurement ---------------------------------------------------------------


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_spawn(spec: dict[str, Any], timeout: float, built: Any = None) -> dict[str, Any]:
    """A fresh interpreter: ``python benchmarks/measure.py '<spec>'``."""
    cmd = [sys.executable, str(MEASURE), json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(spec["threads"]),
            cwd=HERE.parent,
        )
    except subprocess.TimeoutExpired:
        return {"spec": spec, "status": "error", "reason": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"spec": spec, "status": "error", "reason": f"crashed (rc {proc.returncode}): {tail}"}


def run_fork(
    spec: dict[str, Any], timeout: float, built: tuple[Any, Any] | None = None
) -> dict[str, Any]:
    """A forked child of this process, which has imported the libraries and built ``built``
    (model, input) single-threaded, and has run nothing else."""
    from benchmarks.measure import measure

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        code = 0
        try:
            data = json.dumps(measure(spec, built)).encode()
            with os.fdopen(wfd, "wb") as f:
                f.write(data)
        except BaseException:
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    with os.fdopen(rfd, "rb") as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([f], [], [], left)
            if not ready:
                continue
            chunk = os.read(f.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"spec": spec, "status": "error", "reason": f"timeout after {timeout:.0f} s"}
    if chunks:
        return json.loads(b"".join(chunks))
    how = (
        f"signal {os.WTERMSIG(status)}"
        if os.WIFSIGNALED(status)
        else f"rc {os.WEXITSTATUS(status)}"
    )
    return {"spec": spec, "status": "error", "reason": f"crashed ({how})"}


# --- formatting ------------------------------------------------------------------------------


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _ratio(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}x"


def _reason(res: dict[str, Any], limit: int = 90) -> str:
    text = f"{res['status']}: {res.get('reason', '')}".replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Ratios of each method cell to its floor measured in the same run and config."""
    floors = {(r["model"], r["size"], r["floor"]): r for r in rows if r["kind"] == "floor"}
    for r in rows:
        if r["kind"] != "method":
            r["time_ratio"] = r["mem_ratio"] = 1.0 if r["status"] == "ok" else None
            continue
        f = floors.get((r["model"], r["size"], r["floor"]))
        ok = r["status"] == "ok" and f is not None and f["status"] == "ok"
        r["time_ratio"] = r["time_ms"] / f["time_ms"] if ok and f["time_ms"] > 0 else None
        r["mem_ratio"] = r["mem_mib"] / f["mem_mib"] if ok and f["mem_mib"] > 0 else None


def cell_text(r: dict[str, Any]) -> str:
    if r["status"] != "ok":
        return _reason(r)
    return (
        f"{_num(r['time_ms'])} ms ({_ratio(r['time_ratio'])}) · "
        f"{_num(r['mem_mib'])} MiB ({_ratio(r['mem_ratio'])})"
    )


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    anchors = [a for a in ANCHOR_ORDER if any(r["impl"] == a for r in rows)]
    anchors += sorted(
        {r["impl"] for r in rows if r["kind"] == "method"} - set(anchors) - {"volsal"}
    )
    lines = [
        f"# volsal benchmark: {meta['device']}{' (smoke)' if meta['smoke'] else ''}",
        "",
        f"- date: {meta['date']}; wall time of the run: {meta['wall_s']:.0f} s",
        f"- device: {meta['device']} ({meta['device_name']}); torch threads: {meta['threads']}; "
        f"repeats: {meta['repeats']} (median of "
        f"{'wall-clock' if meta['clock'] == 'wall' else 'process CPU'} time, after one "
        f"warm-up call); batch 1, target class 1, seed {meta['seed']}; "
        f"load average at start: {meta['load_average_at_start']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- each measurement in a fresh process ({meta['launcher']}); memory = {meta['mem_method']}",
        "- ratios are to the row's floor, measured in the same run; `param .grad`: whether "
        "volsal's call left any parameter gradient allocated",
        "",
    ]
    configs = []
    for r in rows:
        if (r["model"], r["size"]) not in configs:
            configs.append((r["model"], r["size"]))
    for model, size in configs:
        mdef = MODELS[model]
        mine = [r for r in rows if r["model"] == model and r["size"] == size]
        lines += [
            f"## {mdef.title}, {size}^{mdef.spatial_dims} (CAM layer `{mdef.cam_layer}`)",
            "",
            "| row | floor | volsal ms | x floor | volsal MiB | mem x floor | param .grad |"
            + "".join(f" {ANCHOR_TITLES.get(a, a)} |" for a in anchors),
            "|---|---|--:|--:|--:|--:|:-:|" + "---|" * len(anchors),
        ]
        for r in mine:
            if r["kind"] != "floor":
                continue
            if r["status"] == "ok":
                vals = [_num(r["time_ms"]), "1.00x", _num(r["mem_mib"]), "1.00x", "no"]
            else:
                vals = [_reason(r), "", "", "", ""]
            lines.append(
                f"| floor: {r['floor']} | | " + " | ".join(vals) + " |" + " |" * len(anchors)
            )
        names = [r["case"] for r in mine if r["kind"] == "method" and r["impl"] == "volsal"]
        for name in names:
            cells = {r["impl"]: r for r in mine if r["kind"] == "method" and r["case"] == name}
            v = cells["volsal"]
            if v["status"] == "ok":
                grad = "yes" if v.get("param_grad_allocated") else "no"
                vals = [
                    _num(v["time_ms"]),
                    _ratio(v["time_ratio"]),
                    _num(v["mem_mib"]),
                    _ratio(v["mem_ratio"]),
                    grad,
                ]
            else:
                vals = [_reason(v), "", "", "", ""]
            anchor_cells = [cell_text(cells[a]) if a in cells else "—" for a in anchors]
            lines.append(f"| {name} | {v['floor']} | " + " | ".join(vals + anchor_cells) + " |")
        lines.append("")
    notes = sorted(
        {
            (r["case"], r["impl"], r.get("reason", ""))
            for r in rows
            if r["status"] != "ok" and len(_reason(r, 10**6)) > 90
        }
    )
    if notes:
        lines += ["Full reasons:", ""]
        lines += [f"- {case} / {impl}: {reason}" for case, impl, reason in notes]
        lines.append("")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in VERSIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (CI)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="case names, families or floors")
    p.add_argument(
        "--repeats", type=int, help="timed calls after the first (default 5 CPU, 10 CUDA, 1 smoke)"
    )
    p.add_argument("--sizes", nargs="+", type=int, help="3D sizes to run (default 64 96)")
    p.add_argument("--models", nargs="+", help=f"models to run (default all: {', '.join(MODELS)})")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads (default: all cores; smoke: 1)"
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time the table reports: wall (perf_counter, default) or cpu (process CPU time; "
        "steadier on a shared machine, use with --threads 1; CPU only)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    p.add_argument(
        "--launcher",
        choices=("spawn", "fork"),
        help="fork (CPU default): each measurement in a forked child of a parent that imported "
        "the libraries and built the model once and ran nothing else; spawn (CUDA default): a "
        "fresh interpreter per measurement (python benchmarks/measure.py SPEC)",
    )
    p.add_argument(
        "--timeout", type=float, help="seconds per measurement (default 1800, smoke 300)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    device = args.device
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise SystemExit(f"--device must be cpu or cuda, got {device!r}")
    kind = "cuda" if device.startswith("cuda") else "cpu"
    repeats = args.repeats or (1 if args.smoke else DEFAULT_REPEATS[kind])
    cores = len(os.sched_getaffinity(0))
    # smoke: 1 thread (numbers do not matter there; OpenMP threads spinning on a busy CI
    # machine make tiny models 10x slower)
    threads = args.threads or (1 if args.smoke else cores)
    launcher = args.launcher or ("fork" if kind == "cpu" else "spawn")
    load = os.getloadavg()[0]
    if load > cores and not args.smoke:
        log(
            f"warning: load average {load:.1f} on {cores} cores: timings will be noisy "
            "(median of repeats helps; --threads 1 avoids OpenMP threads waiting on each other)"
        )
    if launcher == "fork" and kind == "cuda":
        raise SystemExit("--launcher fork is CPU-only (CUDA cannot be used across fork)")
    if args.clock == "cpu" and kind == "cuda":
        raise SystemExit("--clock cpu measures CPU time; use the default wall clock on CUDA")
    timeout = args.timeout or (300.0 if args.smoke else 1800.0)
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    # before the case files are imported (here and in every measurement process)
    os.environ[SMOKE_ENV] = "1" if args.smoke else "0"
    cases, direct_floors = select_cases(load_cases(), args.only)
    configs = plan_configs(args)
    if launcher == "fork":
        import warnings

        warnings.simplefilter("ignore")
        for module in PRELOAD:
            try:
                importlib.import_module(module)
            except Exception as exc:  # the measurement will report it
                log(f"preload {module}: {short_error(exc)}")
    launch = run_fork if launcher == "fork" else run_spawn

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{kind}{'-smoke' if args.smoke else ''}"
    meta: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": kind,
        "device_name": cpu_name() if kind == "cpu" else "",
        "host_cpus": os.cpu_count(),
        "threads": threads,
        "load_average_at_start": round(load, 2),
        "repeats": repeats,
        "clock": args.clock,
        "seed": args.seed,
        "smoke": args.smoke,
        "launcher": launcher,
        "mem_method": "",
        "versions": versions(),
    }
    rows: list[dict[str, Any]] = []

    def record(res: dict[str, Any], started: float, **key: Any) -> None:
        row = dict(key)
        row["wall_s"] = round(time.monotonic() - started, 2)
        row.update({k: v for k, v in res.items() if k != "spec"})
        rows.append(row)
        if res.get("device_name"):
            meta["device_name"] = res["device_name"]
        if res.get("mem_method") and not meta["mem_method"]:
            meta["mem_method"] = res["mem_method"]
        what = f"{key['model']}@{key['size']} {key.get('case') or 'floor'} {key['impl']}"
        if res["status"] == "ok":
            log(f"  {what}: {res['time_ms']:.1f} ms, {res['mem_mib']:.1f} MiB")
        else:
            log(f"  {what}: {_reason(res, 200)}")

    for model, size in configs:
        log(f"== {model} {size} ({launcher}, {threads} threads, {repeats} repeats)")
        chosen = [c for c in cases if c.models is None or model in c.models]
        floors = list(dict.fromkeys([c.floor for c in chosen] + sorted(direct_floors)))
        built = None
        if launcher == "fork":  # build once here, single-threaded; each child gets a copy
            import torch

            from benchmarks.models import build

            torch.set_num_threads(1)
            try:
                built = build(model, size, "cpu", seed=args.seed)
            except Exception as exc:  # the children build again and report the error
                log(f"building {model}@{size} in the parent failed: {short_error(exc)}")
        base = {
            "model": model,
            "size": size,
            "device": device,
            "threads": threads,
            "repeats": repeats,
            "seed": args.seed,
            "target": 1,
            "clock": args.clock,
        }
        for floor in floors:
            started = time.monotonic()
            spec = dict(base, kind="floor", floor=floor)
            record(
                launch(spec, timeout, built),
                started,
                model=model,
                size=size,
                kind="floor",
                floor=floor,
                case=None,
                impl="floor",
            )
        for case in chosen:
            impls = [("volsal", ())] + [(a, anc.requires) for a, anc in case.anchors.items()]
            for impl, requires in impls:
                started = time.monotonic()
                key = dict(
                    model=model,
                    size=size,
                    kind="method",
                    floor=case.floor,
                    case=case.name,
                    impl=impl,
                )
                absent = missing_module(requires)
                if absent:
                    res = {"status": "skipped", "reason": f"{absent} is not installed"}
                else:
                    spec = dict(base, kind="method", case=case.name, impl=impl)
                    res = launch(spec, timeout, built)
                record(res, started, **key)
        del built
        # write after every config, so a long run that is stopped keeps what it measured
        meta["wall_s"] = time.monotonic() - start
        add_ratios(rows)
        (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        (args.out / f"{stem}.md").write_text(markdown(meta, rows))
    log(f"wrote {args.out / stem}.json and .md in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
