"""The bundled demo assets: weights, cases, masks, geometry and metadata agree with each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from volsal import demo
from volsal.errors import ParameterError

META = demo.demo_metadata()
CASES = demo.list_demo_cases()


@pytest.fixture(scope="module")
def model():
    return demo.load_demo_model()


def test_cases_listed_with_both_labels():
    assert CASES[0] == "example_lesion"
    labels = {META["cases"][name]["has_lesion"] for name in CASES}
    assert labels == {True, False}


def test_weights_are_a_plain_state_dict_loadable_weights_only():
    path = demo.DEMO_ASSETS / demo.WEIGHTS_FILE
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(state, dict)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert set(state) == set(demo.DemoNet3D().state_dict())
    assert path.stat().st_size < 1_000_000


def test_model_is_in_eval_mode_with_the_named_cam_layer(model):
    assert not any(m.training for m in model.modules())
    assert demo.DEMO_LAYER in dict(model.named_modules())
    assert sum(p.numel() for p in model.parameters()) == META["model"]["n_parameters"]


@pytest.mark.parametrize("name", CASES)
def test_case_prediction_matches_label_and_metadata(model, name):
    entry = META["cases"][name]
    x, affine, mask = demo.load_demo_case(name)
    assert x.shape == (1, 1, 64, 64, 64) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    acts = {}
    block4 = dict(model.named_modules())[demo.DEMO_LAYER]
    handle = block4.register_forward_hook(lambda m, i, o: acts.update(shape=o.shape))
    try:
        with torch.no_grad():
            probs = model(x).softmax(1)[0]
    finally:
        handle.remove()
    assert acts["shape"] == (1, 64, 8, 8, 8)
    assert int(probs.argmax()) == entry["label"] == int(entry["has_lesion"])
    assert float(probs[1]) == pytest.approx(entry["p_lesion"], abs=1e-3)
    assert float(probs.max()) >= 0.9


@pytest.mark.parametrize("name", CASES)
def test_case_geometry_and_mask_inside_brain(name):
    entry = META["cases"][name]
    _, affine, mask = demo.load_demo_case(name)
    assert affine.shape == (4, 4) and affine.dtype == np.float64
    assert np.isfinite(affine).all()
    assert abs(np.linalg.det(affine[:3, :3])) > 1e-6
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), META["spacing_mm"])
    assert mask.shape == (64, 64, 64) and mask.dtype == torch.bool
    assert bool(mask.any()) == entry["has_lesion"]
    assert int(mask.sum()) == entry["mask_voxels"]
    if not entry["has_lesion"]:
        return
    # Every lesion voxel, mapped through the two affines, lands inside the template's brain.
    brain, brain_affine = demo.load_brain_mask()
    ijk = np.argwhere(mask.numpy()).T.astype(float)
    world = affine[:3, :3] @ ijk + affine[:3, 3:]
    in_brain = np.linalg.solve(brain_affine[:3, :3], world - brain_affine[:3, 3:])
    idx = np.round(in_brain).astype(int)
    np.testing.assert_allclose(in_brain, idx, atol=1e-6)  # shifted by whole voxels only
    inside = (idx >= 0).all(0) & (idx < 64).all(0)
    assert inside.all()
    assert brain.numpy()[tuple(idx)].all()
    # The recorded centre: world = affine @ voxel, and the mask sits around it.
    centre = np.array(entry["lesion_centre_voxel"])
    np.testing.assert_allclose(
        affine[:3, :3] @ centre + affine[:3, 3], entry["lesion_centre_world_mm"], atol=1e-2
    )
    assert np.linalg.norm(ijk.mean(1) - centre) < 2.0


def test_example_lesion_is_clear_and_off_centre():
    entry = META["cases"]["example_lesion"]
    centre = np.array(entry["lesion_centre_voxel"])
    assert np.linalg.norm(centre - 31.5) >= 10
    assert entry["mask_voxels"] >= 200
    x, _, mask = demo.load_demo_case("example_lesion")
    brain, _ = demo.load_brain_mask()
    inside = x[0, 0][mask].mean()
    rest = x[0, 0][brain & ~mask].mean()
    assert float(inside - rest) > 0.3  # a bright blob on brain intensity about 1


def test_unknown_case_names_the_fix():
    with pytest.raises(ParameterError, match="list_demo_cases"):
        demo.load_demo_case("no_such_case")


def test_assets_small_and_licensed():
    files = [p for p in demo.DEMO_ASSETS.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 4_000_000
    notice = (demo.DEMO_ASSETS / "LICENSE-MNI.txt").read_text(encoding="utf-8")
    assert "Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre," in notice
    assert META["training"]["val_accuracy"] >= 0.8
