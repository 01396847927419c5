"""The command line: exit codes, model loading safety, `volsal layers` and `volsal methods`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from volsal.cli import main
from volsal.testing import tiny_cnn

HERE = Path(__file__).parent


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


@pytest.fixture
def factory_weights(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny_cnn(3, num_classes=2).state_dict(), path)
    return path


def test_methods_lists_registry(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "gradcam" in out and "Selvaraju" in out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2


def test_layers_factory_marks_auto(capsys, factory_weights, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    rc = main(
        [
            "layers",
            "--model-factory",
            "cli_models:build",
            "--weights",
            str(factory_weights),
            "--input-shape",
            "1,1,8,8,8",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    line = next(ln for ln in out.splitlines() if "<- auto" in ln)
    assert line.split()[1] == "features" and line.startswith("*")
    assert "1x8x4x4x4" in line


def test_layers_bad_shape_is_usage_error(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    rc = main(["layers", "--model-factory", "cli_models:build", "--input-shape", "1,1,x"])
    assert rc == 2
    assert "--input-shape" in capsys.readouterr().err


def test_pickle_refused_without_trust(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(tiny_cnn(3), path)  # a pickled nn.Module: loading it runs code
    res = run_cli("layers", "--model", str(path), "--input-shape", "1,1,8,8,8")
    assert res.returncode == 2, res.stderr
    assert "--trust-pickle" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("layers", "--model", str(path), "--trust-pickle", "--input-shape", "1,1,8,8,8")
    assert res.returncode == 0, res.stderr
    assert "<- auto" in res.stdout


def test_torchscript_layers_needs_python_model(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.script(tiny_cnn(3)).save(str(path))
    res = run_cli("layers", "--model", str(path), "--input-shape", "1,1,8,8,8")
    assert res.returncode == 1
    assert "--model-factory" in res.stderr and "Traceback" not in res.stderr


def test_weights_that_do_not_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(HERE))
    path = tmp_path / "w.pt"
    torch.save(tiny_cnn(3, num_classes=5).state_dict(), path)
    rc = main(
        [
            "layers",
            "--model-factory",
            "cli_models:build",
            "--weights",
            str(path),
            "--input-shape",
            "1,1,8,8,8",
        ]
    )
    assert rc == 2
    assert "do not fit" in capsys.readouterr().err


def test_missing_model_file_exit_1(tmp_path, capsys):
    rc = main(["layers", "--model", str(tmp_path / "nope.pt"), "--input-shape", "1,1,8,8,8"])
    assert rc == 1
    assert "does not exist" in capsys.readouterr().err
