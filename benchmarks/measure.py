"""One measurement, meant to run in a fresh process.

    python benchmarks/measure.py '<json spec>'      (or: python -m benchmarks.measure ...)

prints one line ``RESULT {json}`` on stdout. The spec names what to run::

    {"kind": "floor", "floor": "forward_nograd", ...}             # a floor
    {"kind": "method", "case": "GradCAM", "impl": "captum", ...}  # a method (volsal or anchor)
    # common keys: "model", "size", "device", "threads", "repeats", "seed", "target"

Procedure: build the model (eval mode) and a seeded input on the device, set up the callable
(the factory; not measured), then

1. **memory, on the first call**: CPU: ``gc.collect()``, ``malloc_trim(0)``, reset the
   process's peak-RSS high-water mark (``echo 5 > /proc/self/clear_refs``, which also resets
   ``getrusage().ru_maxrss``), read the current RSS (``/proc/self/statm``), make the call, and
   report ``ru_maxrss`` after it minus the RSS before it. If the high-water mark cannot be
   reset, the value is a lower bound and the result says so. CUDA:
   ``torch.cuda.reset_peak_memory_stats()``, then ``max_memory_allocated()`` after the call
   minus ``memory_allocated()`` before it. Measuring the first call means nothing a previous
   call left behind (parameter ``.grad``, a retained graph, allocator caches) hides part of
   the peak; the first call is also the warm-up of the timing;
2. **time**: ``repeats`` more calls, each timed with ``time.perf_counter()`` (with
   ``torch.cuda.synchronize()`` before and after on CUDA) and with ``time.process_time()``
   (CPU time of all the process's threads); the medians are reported (``wall_ms``,
   ``cpu_ms``), with all times. ``time_ms`` is the one the spec's ``"clock"`` asks for
   (``"wall"``, the default, or ``"cpu"``: steadier on a shared machine with one thread).

Errors never escape: the result has ``status`` ``"ok"``, ``"skipped"`` (an optional anchor
library cannot be imported, or its factory raised ``Skip``) or ``"error"`` with a reason.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1024.0 * 1024.0


def short_error(exc: BaseException, limit: int = 160) -> str:
    """``"TypeName: first line of the message"``, cut to ``limit`` characters."""
    text = str(exc).strip().splitlines()
    msg = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


# --- CPU memory probes (Linux) ------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --- the measurement ------------------------------------------------------------------------


def _factory(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The factory for the spec and extra info; raises ``Skip`` for unusable anchors."""
    from benchmarks.cases import Skip, load_cases
    from benchmarks.floors import make_floor

    if spec["kind"] == "floor":
        name = spec["floor"]
        return (lambda model, x, target, layer: make_floor(name, model, x, target)), {}
    case = load_cases()[spec["case"]]
    impl = spec["impl"]
    if impl == "volsal":
        return case.volsal, {}
    anchor = case.anchors[impl]
    for module in anchor.requires:
        try:
            importlib.import_module(module)
        except Exception as exc:  # absent, or present but broken (e.g. torchvision)
            raise Skip(f"cannot import {module}: {short_error(exc)}") from exc
    return anchor.factory, {"anchor_note": anchor.note}


def measure(spec: dict[str, Any], built: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Run one measurement described by ``spec`` (see the module docstring).

    Args:
        spec: what to measure.
        built: ``(model, x)`` already built on the CPU by :func:`benchmarks.models.build` with
            the spec's model, size and seed (the ``fork`` launcher builds them once in the parent
            and forks one child per measurement); ``None`` builds them here.
    """
    from benchmarks.cases import Skip

    result: dict[str, Any] = {"spec": spec, "status": "ok"}
    stage = "setup"
    try:
        factory, info = _factory(spec)
        result.update(info)

        import torch

        from benchmarks.models import MODELS, build

        threads = int(spec.get("threads") or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        result["threads"] = torch.get_num_threads()
        device = spec.get("device", "cpu")
        cuda = device.startswith("cuda")
        if cuda:
            if not torch.cuda.is_available():
                raise RuntimeError("device cuda asked for, but torch.cuda.is_available() is False")
            result["device_name"] = torch.cuda.get_device_name(torch.device(device))

        stage = "build"
        if built is None:
            model, x = build(spec["model"], spec["size"], device, seed=int(spec.get("seed", 0)))
        else:
            model, x = built[0].to(device), built[1].to(device)
        layer = MODELS[spec["model"]].cam_layer
        target = int(spec.get("target", 1))
        fn = factory(model, x, target, layer)

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize()

        # 1. memory of the first call (which is also the warm-up of the timing)
        stage = "first call"
        gc.collect()
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            out = fn()
            sync()
            peak = torch.cuda.max_memory_allocated()
            result["mem_method"] = "cuda max_memory_allocated - memory_allocated before"
            result["allocated_before_mib"] = before / MIB
        else:
            _malloc_trim()
            reset = _reset_peak_rss()
            before = _rss_bytes()
            high_before = _peak_rss_bytes()
            out = fn()
            peak = _peak_rss_bytes()
            result["mem_method"] = (
                "peak RSS (reset) - RSS before"
                if reset
                else "peak RSS - RSS before (lower bound: peak RSS could not be reset)"
            )
            result["rss_before_mib"] = before / MIB
            result["peak_rss_mib"] = peak / MIB
            if not reset and high_before > before:
                result["mem_lower_bound"] = True
        result["mem_mib"] = max(peak - before, 0) / MIB
        del out
        result["param_grad_allocated"] = any(p.grad is not None for p in model.parameters())

        # 2. time of `repeats` further calls
        stage = "timed calls"
        times, cpu_times = [], []
        for _ in range(max(int(spec.get("repeats", 5)), 1)):
            sync()
            c0, t0 = time.process_time(), time.perf_counter()
            out = fn()
            sync()
            times.append((time.perf_counter() - t0) * 1000.0)
            cpu_times.append((time.process_time() - c0) * 1000.0)
            del out
        result["wall_ms"] = statistics.median(times)
        result["wall_times_ms"] = times
        result["cpu_ms"] = statistics.median(cpu_times)
        result["cpu_times_ms"] = cpu_times
        # the clock the table uses: wall time unless the spec asks for CPU time
        result["time_ms"] = result["cpu_ms" if spec.get("clock") == "cpu" else "wall_ms"]
        result["param_grad_allocated"] = result["param_grad_allocated"] or any(
            p.grad is not None for p in model.parameters()
        )
    except Skip as exc:
        result.update(status="skipped", reason=str(exc))
    except Exception as exc:
        result.update(
            status="error",
            reason=f"{stage}: {short_error(exc)}" if stage != "setup" else short_error(exc),
            traceback=traceback.format_exc(limit=-6),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python benchmarks/measure.py '<json spec>' | @spec.json", file=sys.stderr)
        return 2
    arg = argv[0]
    spec = json.loads(Path(arg[1:]).read_text() if arg.startswith("@") else arg)
    result = measure(spec)
    sys.stdout.flush()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
