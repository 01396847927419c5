"""`volsal explain`: end to end on the scan's grid, several methods, model formats, exit codes.

Two runs go through a subprocess (``python -m volsal.cli``: the real entry point, exit codes and
stderr without tracebacks); the rest call ``volsal.cli.main`` in-process, which is faster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from volsal.cli import main
from volsal.testing import tiny_cnn

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import cli_models  # noqa: E402


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "volsal.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def oblique_affine() -> np.ndarray:
    """Anisotropic (1.5, 1.0, 2.5) mm voxels, axes L, A, I-ish, rotated off every world axis."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", [20, -15, 30], degrees=True).as_matrix()
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag([-1.0, 1.0, -1.0]) @ np.diag([1.5, 1.0, 2.5])
    a[:3, 3] = [30.0, -12.0, 8.0]
    return a


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small random scan, factory weights, a TorchScript file and a pickled model."""
    d = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    scan = rng.random((12, 10, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(scan, oblique_affine()), d / "scan.nii.gz")
    torch.save(cli_models.build(3, num_classes=2).state_dict(), d / "w.pt")
    torch.jit.script(tiny_cnn(3, num_classes=2)).save(str(d / "scripted.pt"))
    torch.save(tiny_cnn(3, num_classes=2), d / "pickled.pt")  # unpickling runs code
    (d / "broken.nii.gz").write_bytes(b"not a nifti file")
    return d


def factory_args(d: Path, *more: str) -> list[str]:
    return [
        "explain",
        "--model-factory",
        "cli_models:build",
        "--weights",
        str(d / "w.pt"),
        "--input",
        str(d / "scan.nii.gz"),
        *more,
    ]


# ------------------------------------------------------------------------- end to end
def test_factory_two_methods_maps_land_on_the_lesion(tmp_path):
    """Oblique anisotropic scan -> RAS, 2 mm, 16^3 -> gradcam + gradient -> source grid.

    ``cli_models.bright`` has a positive Gaussian conv, a square, GAP and a linear layer, so
    both its input gradient and its Grad-CAM peak at the centre of a bright blob (see its
    docstring). The blob is isotropic in world space (sigma 3 mm) around a known voxel.
    """
    shape, lesion = (20, 24, 16), np.array([12, 8, 9])
    a = oblique_affine()
    assert nib.aff2axcodes(a) == ("L", "A", "I")
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = ijk @ a[:3, :3].T + a[:3, 3]
    p = a[:3, :3] @ lesion + a[:3, 3]
    img = np.exp(-((world - p) ** 2).sum(-1) / (2 * 3.0**2)).astype(np.float32)
    nib.save(nib.Nifti1Image(img, a), tmp_path / "case.nii.gz")
    torch.save(cli_models.bright(3).state_dict(), tmp_path / "bright.pt")

    res = run_cli(
        "explain",
        "--model-factory",
        "cli_models:bright",
        "--weights",
        "bright.pt",
        "--input",
        "case.nii.gz",
        "--method",
        "gradcam",
        "--method",
        "gradient",
        "--target",
        "1",
        "--orientation",
        "RAS",
        "--spacing",
        "2",
        "--size",
        "16,16,16",
        "--out",
        "heat.nii.gz",
        "--png",
        "overlay.png",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    for name in ("gradcam", "gradient"):
        out = tmp_path / f"heat_{name}.nii.gz"
        img_out = nib.load(out)
        assert img_out.shape == shape
        np.testing.assert_allclose(img_out.affine, a, atol=1e-5)
        m = np.asarray(img_out.dataobj)
        peak = np.array(np.unravel_index(np.argmax(m), m.shape))
        assert np.abs(peak - lesion).max() <= 1, (name, peak)
        side = json.loads((tmp_path / f"heat_{name}.json").read_text())
        assert side["method"] == name and side["classes"] == [1]
        assert name in res.stdout

        import matplotlib.image as mpimg

        png = mpimg.imread(tmp_path / f"overlay_{name}.png")[..., :3]
        assert png.std() > 0.05  # not blank
        coloured = np.abs(png[..., 0] - png[..., 2]) > 0.2  # heat colours, not only grey
        assert coloured.sum() > 50
    assert (tmp_path / "heat_gradcam.json").exists()
    assert nib.load(tmp_path / "heat_gradcam.nii.gz").header.get_xyzt_units()[0] == "mm"


def test_torchscript_gradient_in_subprocess(files, tmp_path):
    res = run_cli(
        "explain",
        "--model",
        str(files / "scripted.pt"),
        "--input",
        str(files / "scan.nii.gz"),
        "--method",
        "gradient",
        "--target",
        "1",
        "--out",
        str(tmp_path / "g.nii.gz"),
    )
    assert res.returncode == 0, res.stderr
    img = nib.load(tmp_path / "g.nii.gz")
    assert img.shape == (12, 10, 8)
    np.testing.assert_allclose(img.affine, oblique_affine(), atol=1e-5)
    assert np.abs(np.asarray(img.dataobj)).max() > 0
    assert (tmp_path / "g.json").exists()


def test_torchscript_cam_points_to_model_factory(files, tmp_path, capsys):
    rc = main(
        [
            "explain",
            "--model",
            str(files / "scripted.pt"),
            "--input",
            str(files / "scan.nii.gz"),
            "--method",
            "gradcam",
            "--out",
            str(tmp_path / "c.nii.gz"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "--model-factory" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_out_dir_names_and_method_option(files, tmp_path, capsys):
    rc = main(
        factory_args(
            files,
            "--method",
            "integrated_gradients,gradcam",
            "--opt",
            "n_steps=3",
            "--layer",
            "features.conv2",
            "--out-dir",
            str(tmp_path / "maps"),
        )
    )
    assert rc == 0, capsys.readouterr().err
    side = json.loads((tmp_path / "maps" / "scan_integrated_gradients.json").read_text())
    assert side["options"]["n_steps"] == 3
    side = json.loads((tmp_path / "maps" / "scan_gradcam.json").read_text())
    assert side["layer"] == "features.conv2"


# ------------------------------------------------------------------------- exit codes
def test_unknown_method_is_usage_error(files, tmp_path, capsys):
    rc = main(factory_args(files, "--method", "gradcamm", "--out-dir", str(tmp_path)))
    err = capsys.readouterr().err
    assert rc == 2
    assert "gradcamm" in err and "'gradcam'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_unknown_layer_suggests_close_names(files, tmp_path, capsys):
    rc = main(
        factory_args(files, "--method", "gradcam", "--layer", "feature.conv2", "--out-dir", ".")
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "'features.conv2'" in err and "Traceback" not in err


def test_refused_overwrite_leaves_file_untouched(files, tmp_path, capsys):
    existing = tmp_path / "scan_gradcam.nii.gz"
    existing.write_bytes(b"precious bytes")
    rc = main(factory_args(files, "--method", "gradcam", "--out-dir", str(tmp_path)))
    err = capsys.readouterr().err
    assert rc == 2
    assert "--overwrite" in err and "Traceback" not in err
    assert existing.read_bytes() == b"precious bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan_gradcam.nii.gz"]
    rc = main(factory_args(files, "--method", "gradcam", "--out-dir", str(tmp_path), "--overwrite"))
    assert rc == 0
    assert nib.load(existing).shape == (12, 10, 8)


def test_unreadable_input_exit_1(files, tmp_path, capsys):
    rc = main(
        [
            "explain",
            "--model-factory",
            "cli_models:build",
            "--input",
            str(files / "broken.nii.gz"),
            "--out-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "broken.nii.gz" in err and "Traceback" not in err


def test_unsafe_pickle_refused(files, tmp_path, capsys):
    rc = main(
        [
            "explain",
            "--model",
            str(files / "pickled.pt"),
            "--input",
            str(files / "scan.nii.gz"),
            "--out-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "--trust-pickle" in err and "--model-factory" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--target", "7"], "out of range"),
        (["--target", "one"], "--target"),
        (["--method", "gradcam", "--method", "grad-cam"], "twice"),
        (["--size", "16,16"], "--size"),
        (["--orientation", "RRS"], "--orientation"),
        (["--opt", "no_such_option=1"], "no_such_option"),
        (["--out", "heat.png"], "--out"),
    ],
)
def test_usage_errors_exit_2(files, tmp_path, capsys, extra, needle):
    out = [] if "--out" in extra else ["--out-dir", str(tmp_path)]
    rc = main(factory_args(files, *extra, *out))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
