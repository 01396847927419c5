from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from volsal.errors import DegenerateMapWarning, InputValueError, ParameterError
from volsal.viz import diverging, grayscale, shared_scale


def test_grayscale_hand_computed_with_percentile_clipping():
    # |x| summed over a channel axis (axis 0): [[1, 2], [3, 100]] -> 50th percentile = 2.5
    x = np.array([[[1.0, -2.0], [3.0, 60.0]], [[0.0, 0.0], [0.0, -40.0]]])
    out = grayscale(x, percentile=50, channel_axis=0)
    np.testing.assert_allclose(out, [[0.4, 0.8], [1.0, 1.0]])
    assert isinstance(out, np.ndarray) and out.shape == (2, 2)


def test_grayscale_keeps_zero_and_no_min_subtraction():
    x = np.array([0.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(grayscale(x, percentile=100), [0.0, 0.25, 0.5, 1.0])
    # a map that never reaches zero is NOT stretched to start at 0
    np.testing.assert_allclose(grayscale(x + 4, percentile=100), [0.5, 0.625, 0.75, 1.0])


def test_diverging_hand_computed_sign_and_zero_kept():
    # signed sum over channels (last axis): [-3, 0, 1, 6]; percentile 50 of |.| = 2
    x = np.array([[-1.0, -2.0], [1.0, -1.0], [0.5, 0.5], [3.0, 3.0]])
    out = diverging(x, percentile=50, channel_axis=-1)
    np.testing.assert_allclose(out, [-1.0, 0.0, 0.5, 1.0])


def test_3d_tensor_in_tensor_out_and_batched_per_sample():
    x = torch.zeros(2, 3, 4, 4, 4, dtype=torch.float64)
    x[0, 0, 1, 1, 1] = 2.0
    x[0, 1, 2, 2, 2] = -1.0
    x[1, 2, 3, 3, 3] = 8.0
    x[1, 0, 0, 0, 0] = 4.0
    out = grayscale(x, percentile=100, channel_axis=1, batched=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert out.shape == (2, 4, 4, 4)
    assert out[0, 1, 1, 1] == 1.0 and out[0, 2, 2, 2] == 0.5  # own scale: 2
    assert out[1, 3, 3, 3] == 1.0 and out[1, 0, 0, 0] == 0.5  # own scale: 8
    sig = diverging(x, percentile=100, channel_axis=1, batched=True)
    assert sig[0, 2, 2, 2] == -0.5 and sig[0, 0, 0, 0] == 0.0


def test_2d_and_3d_agree_on_a_depth_one_volume():
    rng = np.random.default_rng(0)
    m2 = rng.normal(size=(2, 6, 7))
    np.testing.assert_allclose(
        diverging(m2[:, None], channel_axis=0)[0], diverging(m2, channel_axis=0)
    )


def test_constant_map_gives_zeros_and_a_warning_never_nan():
    for fn in (grayscale, diverging):
        with pytest.warns(DegenerateMapWarning):
            out = fn(torch.full((4, 4, 4), 3.0))
        assert torch.equal(out, torch.zeros(4, 4, 4))
        with pytest.warns(DegenerateMapWarning):
            out = fn(np.zeros((5, 5)))
        assert not np.isnan(out).any() and (out == 0).all()


def test_one_constant_sample_in_a_batch_only_zeroes_that_sample():
    x = np.stack([np.zeros((3, 3)), np.arange(9.0).reshape(3, 3)])
    with pytest.warns(DegenerateMapWarning, match="1 of 2"):
        out = grayscale(x, percentile=100, batched=True)
    assert (out[0] == 0).all() and out[1].max() == 1.0


def test_sparse_map_falls_back_to_the_maximum():
    x = np.zeros(1000)
    x[3] = 5.0  # the 99th percentile is 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = grayscale(x)
    assert out[3] == 1.0 and out.sum() == 1.0


def test_shared_scale_puts_maps_on_one_scale():
    strong, weak = np.array([0.0, 10.0]), np.array([0.0, 1.0])
    s = shared_scale({"a": strong, "b": weak}, percentile=100)
    assert s == 10.0
    np.testing.assert_allclose(grayscale(weak, scale=s), [0.0, 0.1])
    assert shared_scale([np.array([-4.0, 1.0])], percentile=100, signed=True) == 4.0
    # signed=False pools sum |x_c|, signed=True pools |sum x_c|
    two_ch = np.array([[1.0, -1.0], [1.0, -1.0]])
    assert shared_scale([two_ch], 100, channel_axis=0) == 2.0
    assert shared_scale([two_ch], 100, channel_axis=0, signed=True) == 2.0
    assert shared_scale([np.array([[1.0], [-1.0]])], 100, channel_axis=0, signed=True) == 0.0


def test_bad_arguments_raise_typed_errors():
    with pytest.raises(ParameterError):
        grayscale(np.ones(3), percentile=0)
    with pytest.raises(ParameterError):
        diverging(np.arange(3.0), scale=-1.0)
    with pytest.raises(InputValueError):
        grayscale(np.array([1.0, np.nan]))
    with pytest.raises(ParameterError):
        shared_scale([])
    with pytest.raises(ValueError):  # InputShapeError
        grayscale(np.ones((2, 3)), channel_axis=0, batched=True)
