"""`volsal explain` on a cohort: several --input scans, one model load, every output checked
before any work, each map on its own scan's grid."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from volsal.cli import main

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import cli_models  # noqa: E402


@pytest.fixture
def cohort(tmp_path):
    """Three scans of different shapes and affines, and factory weights."""
    rng = np.random.default_rng(1)
    scans = []
    for i, shape in enumerate([(12, 10, 8), (10, 12, 9), (11, 11, 11)]):
        aff = np.diag([1.0 + 0.5 * i, 1.0, 2.0, 1.0])
        aff[:3, 3] = [i * 10.0, -5.0, 3.0]
        path = tmp_path / f"case{i}.nii.gz"
        nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32), aff), path)
        scans.append(path)
    weights = tmp_path / "w.pt"
    torch.save(cli_models.build(3, num_classes=2).state_dict(), weights)
    return scans, weights


def _args(weights, scans, *more):
    return [
        "explain",
        "--model-factory",
        "cli_models:build",
        "--weights",
        str(weights),
        "--input",
        *map(str, scans),
        "--size",
        "16",
        *more,
    ]


def test_cohort_writes_every_scan_on_its_own_grid(cohort, tmp_path, capsys):
    scans, weights = cohort
    out = tmp_path / "maps"
    rc = main(
        _args(weights, scans, "--method", "gradcam", "--method", "gradient", "--target", "1")
        + ["--out-dir", str(out), "--png", str(out / "overlay.png")]
    )
    assert rc == 0, capsys.readouterr().err
    for scan in scans:
        stem = scan.name[: -len(".nii.gz")]
        src = nib.load(scan)
        for method in ("gradcam", "gradient"):
            img = nib.load(out / f"{stem}_{method}.nii.gz")
            assert img.shape == src.shape
            np.testing.assert_allclose(img.affine, src.affine, atol=1e-5)
            assert (out / f"overlay_{stem}_{method}.png").stat().st_size > 1000


def test_cohort_checks_all_outputs_before_any_work(cohort, tmp_path, capsys):
    scans, weights = cohort
    out = tmp_path / "maps"
    out.mkdir()
    blocker = out / "case2_gradcam.nii.gz"  # the LAST scan's output exists already
    blocker.write_bytes(b"keep me")
    rc = main(_args(weights, scans, "--method", "gradcam", "--out-dir", str(out)))
    assert rc == 2
    assert "case2_gradcam.nii.gz" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["case2_gradcam.nii.gz"]  # nothing written
    assert blocker.read_bytes() == b"keep me"


def test_cohort_needs_out_dir_and_distinct_names(cohort, tmp_path, capsys):
    scans, weights = cohort
    rc = main(_args(weights, scans, "--out", str(tmp_path / "m.nii.gz")))
    assert rc == 2 and "--out-dir" in capsys.readouterr().err
    other = tmp_path / "sub"
    other.mkdir()
    twin = other / scans[0].name
    twin.write_bytes(scans[0].read_bytes())
    rc = main(_args(weights, [scans[0], twin], "--out-dir", str(tmp_path / "maps")))
    assert rc == 2 and "same file name" in capsys.readouterr().err
    assert not (tmp_path / "maps").exists()
