"""check_parameter_randomization on a model trained in the test, with the side-effect contract."""

from __future__ import annotations

import matplotlib.figure
import pytest
import torch

import volsal
from volsal.errors import ParameterError
from volsal.sanity import (
    RandomizationResult,
    check_data_randomization,
    check_parameter_randomization,
)
from volsal.testing import assert_no_side_effects, tiny_cnn


def _squares(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """16x16 noise images with a bright 4x4 square in the left (class 0) or right (1) half."""
    x = 0.3 * torch.randn(n, 1, 16, 16, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    rows = torch.randint(0, 12, (n,), generator=gen)
    cols = torch.randint(0, 4, (n,), generator=gen) + 8 * y
    for i in range(n):
        x[i, 0, rows[i] : rows[i] + 4, cols[i] : cols[i] + 4] += 2.0
    return x, y


@pytest.fixture(scope="module")
def trained():
    gen = torch.Generator().manual_seed(0)
    model = tiny_cnn(2, num_classes=2, width=4, seed=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(100):
        x, y = _squares(16, gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    x, y = _squares(8, gen)
    assert (model(x).argmax(1) == y).float().mean() >= 0.75  # it learned the task
    return model, x, y


def test_cascading_randomisation_lowers_similarity_without_side_effects(trained):
    model, x, y = trained
    method = volsal.Gradient(model)
    res = assert_no_side_effects(
        lambda: check_parameter_randomization(method, x, y, mode="cascading", seed=0), model, x
    )
    assert isinstance(res, RandomizationResult)
    assert [r["layer"] for r in res.table] == [
        "fc",
        "features.bn2",
        "features.conv2",
        "features.bn1",
        "features.conv1",
    ]
    assert [r["depth"] for r in res.table] == [1, 2, 3, 4, 5]
    assert list(res.maps) == ["original"] + [r["layer"] for r in res.table]
    assert res.maps["original"].shape == x.shape
    full = res.table[-1]
    # the gradient depends on the weights: fully randomised maps are far from the trained ones
    # (trained vs itself is 1; measured: 0.23 after the fc layer, -0.02 after all layers)
    assert full["spearman_abs"] < 0.2
    assert full["spearman_abs"] < res.table[0]["spearman_abs"]
    assert res.values["features.conv1"]["spearman"].shape == (8,)
    # same seed, same maps
    again = check_parameter_randomization(method, x, y, mode="cascading", seed=0)
    for label in res.maps:
        assert torch.equal(res.maps[label], again.maps[label])


def test_independent_target_none_and_outputs(trained, tmp_path):
    model, x, _ = trained
    method = volsal.Gradient(model)
    res = assert_no_side_effects(
        lambda: check_parameter_randomization(
            method, x, None, mode="independent", layers=["fc", "features.conv1"]
        ),
        model,
        x,
    )
    assert [r["layer"] for r in res.table] == ["fc", "features.conv1"]
    # target=None: the randomised models explain the class the trained model predicts
    pred = model(x).argmax(1)
    torch.testing.assert_close(res.maps["original"], method(x, pred))
    copy_fc = dict(volsal.sanity.randomized_copies(model, x, "independent", ["fc"]))["fc"]
    torch.testing.assert_close(res.maps["fc"], volsal.Gradient(copy_fc)(x, pred))
    md = res.to_markdown()
    assert md.splitlines()[0].startswith("| layer | depth | spearman_abs")
    assert len(md.splitlines()) == 4
    fig = res.plot_curve()
    assert isinstance(fig, matplotlib.figure.Figure)
    fig.savefig(tmp_path / "curve.png")
    fig = res.plot_maps(x)
    assert isinstance(fig, matplotlib.figure.Figure)
    fig.savefig(tmp_path / "maps.png")


def test_3d_gradcam_and_data_randomization():
    model = tiny_cnn(3, num_classes=2)
    other = tiny_cnn(3, num_classes=2, seed=7)
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    method = volsal.GradCAM(model, layer="features")
    res = assert_no_side_effects(
        lambda: check_parameter_randomization(method, x, 1, layers=slice(-2, None)), model, x
    )
    assert [r["layer"] for r in res.table] == ["fc", "features.bn2"]
    assert res.maps["fc"].shape == (2, 1, 8, 8, 8)
    res.plot_maps(x)
    data = check_data_randomization(volsal.Gradient(model), x, 0, other, metrics=["spearman"])
    assert [r["layer"] for r in data.table] == ["random labels"]
    expected = volsal.sanity.spearman(volsal.Gradient(model)(x, 0), volsal.Gradient(other)(x, 0))
    assert data.table[0]["spearman"] == pytest.approx(expected.mean().item())


def test_bad_arguments():
    model = tiny_cnn(2)
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ParameterError, match="protocol"):
        check_parameter_randomization(lambda x, t: x, x, 0)
    with pytest.raises(ParameterError, match="metric"):
        check_parameter_randomization(volsal.Gradient(model), x, 0, metrics=["psnr"])
