"""The sanity-check example (examples/sanity_checks.py) runs, writes its files, and refuses to
overwrite them."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sanity_checks.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("volsal_example_sanity_checks", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(text: str) -> dict[str, list[str]]:
    """method -> cells of the first metrics table (the means over cases)."""
    part = text.split("## Localisation", 1)[1].split("## Per case", 1)[0]
    rows = {}
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("method", "") and "--" not in cells[1]:
            rows[cells[0]] = cells[1:]
    return rows


def test_example_quick_writes_and_refuses_overwrite(example, tmp_path):
    import matplotlib.image as mpimg

    logs: list[str] = []
    out = tmp_path / "out"
    assert example.main(["--quick", "--out", str(out)], log=logs.append) == 0

    pngs = [out / name for name in example.FIGURES]
    table = out / example.TABLE
    for png in pngs:
        assert png.is_file()
        assert png.stat().st_size < 200_000
        img = mpimg.imread(png)
        assert img.std() > 0.05, f"{png.name} looks blank"

    text = table.read_text(encoding="utf-8")
    assert "python examples/sanity_checks.py --quick" in text
    assert "seed 0" in text
    rows = _table_rows(text)
    for method in example.settings(quick=True)["methods"]:
        assert method in rows, f"no row for {method}"
        values = [float(c) for c in rows[method]]
        assert len(values) == len(example.METRIC_COLUMNS)
        assert all(math.isfinite(v) for v in values)
    # the randomisation summary has a row per method after the full cascade
    assert "| Gradient | cascading, all layers |" in text
    assert "| GradCAM | cascading, all layers |" in text

    before = {p: p.read_bytes() for p in [*pngs, table]}
    logs.clear()
    assert example.main(["--quick", "--out", str(out)], log=logs.append) != 0
    assert any("--overwrite" in line for line in logs)
    assert {p: p.read_bytes() for p in [*pngs, table]} == before
