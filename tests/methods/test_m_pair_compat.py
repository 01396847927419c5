"""The PAIR saliency interface: GetMask / GetSmoothedMask on one non-batched input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_input

import volsal
from volsal.compat import pair
from volsal.errors import InputShapeError
from volsal.testing import tiny_cnn

CLASSES = [
    (pair.GradientSaliency, {}),
    (pair.GuidedBackprop, {}),
    (pair.IntegratedGradients, {"x_steps": 4}),
    (pair.Occlusion, {"size": 4}),
]


@pytest.mark.parametrize("cls, kw", CLASSES, ids=lambda v: getattr(v, "__name__", ""))
def test_getmask_shape_and_smoothed_identities(spatial_dims, cls, kw):
    model = tiny_cnn(spatial_dims, in_channels=2, dtype=torch.float64)
    x_value = make_input(spatial_dims, channels=2, batch=1, dtype=torch.float64)[0].numpy()
    sal = cls(model)
    mask = sal.GetMask(x_value, 1, **kw)
    assert isinstance(mask, np.ndarray) and mask.shape == x_value.shape
    plain = sal.GetSmoothedMask(x_value, 1, stdev_spread=0.0, nsamples=1, magnitude=False, **kw)
    np.testing.assert_allclose(plain, mask, rtol=1e-12, atol=0)
    squared = sal.GetSmoothedMask(x_value, 1, stdev_spread=0.0, nsamples=1, magnitude=True, **kw)
    np.testing.assert_allclose(squared, mask**2, rtol=1e-12, atol=0)


def test_getmask_equals_volsal_method():
    model = tiny_cnn(3, dtype=torch.float64)
    x = make_input(3, batch=1, dtype=torch.float64)
    np.testing.assert_allclose(
        pair.GuidedBackprop(model).GetMask(x[0], 2), volsal.GuidedBackprop(model)(x, 2)[0].numpy()
    )
    ig = pair.IntegratedGradients(model).GetMask(x[0], 2, x_steps=5, x_baseline=0.5)
    ref = volsal.IntegratedGradients(model, n_steps=5, baseline=0.5)(x, 2)[0]
    np.testing.assert_allclose(ig, ref.numpy())
    smooth = pair.GradientSaliency(model).GetSmoothedMask(x[0], 2, nsamples=3, seed=4)
    ref = volsal.SmoothGrad(model, n_samples=3, variant="squared", seed=4)(x, 2)[0]
    np.testing.assert_allclose(smooth, ref.numpy())


def test_gradcam_mask_has_spatial_shape():
    model = tiny_cnn(3)
    x_value = make_input(3, batch=1)[0]
    cam = pair.GradCam(model, conv_layer="features")
    assert cam.GetMask(x_value, 0).shape == (8, 8, 8)
    assert cam.GetSmoothedMask(x_value, 0, nsamples=2).shape == (8, 8, 8)


def test_batched_input_is_refused_with_a_fix():
    model = tiny_cnn(3)
    with pytest.raises(InputShapeError, match="without a batch axis"):
        pair.GradientSaliency(model).GetMask(make_input(3), 0)
