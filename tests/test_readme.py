"""The README's Python snippets run as written (in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_the_quick_start():
    blocks = _python_blocks()
    assert len(blocks) >= 2
    assert "GradCAM" in blocks[0] and "save_like" in blocks[0] and "plot_slices" in blocks[0]


def test_readme_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _python_blocks():  # later blocks reuse names from earlier ones, as a reader does
        exec(compile(block, str(README), "exec"), namespace)
    import nibabel as nib
    import numpy as np

    from volsal import demo

    img = nib.load(tmp_path / "gradcam.nii.gz")
    np.testing.assert_allclose(img.affine, nib.load(demo.case_path("example_lesion")).affine)
    assert (tmp_path / "gradcam.png").stat().st_size > 10_000
    ig = namespace["exp"]
    assert ig.maps.shape == (1, 1, 48, 48, 48)
    assert namespace["maps"].shape == (2, 1, 48, 48, 48)
    assert namespace["sg"].shape == (1, 1, 48, 48, 48)
    # completeness of IG: the gap is small against the score difference
    scores = ig.scores
    gap = ig.extras["completeness_gap"]
    assert gap.abs().max() <= 0.05 * (scores - ig.extras["baseline_scores"]).abs().max() + 1e-3


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
