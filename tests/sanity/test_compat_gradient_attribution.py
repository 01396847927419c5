"""The seed-004 interface: gradient_map and randomize_model_parameters."""

from __future__ import annotations

import pytest
import torch

import volsal
from volsal.compat.gradient_attribution import gradient_map, randomize_model_parameters
from volsal.errors import ParameterError
from volsal.methods.gradient import Deconvnet
from volsal.testing import assert_no_side_effects, tiny_cnn


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gradient_map_is_rescaled_abs_channel_sum(spatial_dims):
    model = tiny_cnn(spatial_dims, in_channels=2)
    x = torch.randn((2, 2) + (8,) * spatial_dims, generator=torch.Generator().manual_seed(0))
    maps = assert_no_side_effects(
        lambda: gradient_map(model, x, ["GradientExplanation", "GuidedBackprop", "ZeilerFergus"]),
        model,
        x,
    )
    assert len(maps) == 3
    for m in maps:
        assert m.shape == (2, 1) + (8,) * spatial_dims
        assert m.flatten(1).amin(1).tolist() == [0.0, 0.0]
        assert m.flatten(1).amax(1).tolist() == [1.0, 1.0]
    # by hand: |grad| summed over channels, min-max per sample
    g = volsal.Gradient(model)(x, None).abs().sum(1, keepdim=True)
    lo = g.flatten(1).amin(1).reshape((2,) + (1,) * (spatial_dims + 1))
    hi = g.flatten(1).amax(1).reshape((2,) + (1,) * (spatial_dims + 1))
    torch.testing.assert_close(maps[0], (g - lo) / (hi - lo))
    zf = Deconvnet(model)(x, 1).abs().sum(1, keepdim=True)
    zlo = zf.flatten(1).amin(1).reshape(lo.shape)
    zhi = zf.flatten(1).amax(1).reshape(lo.shape)
    single = gradient_map(model, x, "zeiler_fergus", target=1)
    torch.testing.assert_close(single, (zf - zlo) / (zhi - zlo))
    with pytest.raises(ParameterError):
        gradient_map(model, x, "SmoothGrad")


def test_randomize_model_parameters_skips_layers_without_parameters():
    model = tiny_cnn(2)
    leaves = [
        "features.conv1",
        "features.bn1",
        "features.relu1",
        "features.pool1",
        "features.conv2",
        "features.bn2",
        "features.relu2",
        "gap",
        "fc",
    ]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    one = randomize_model_parameters(model, 4)  # conv2 only
    casc = randomize_model_parameters(model, 4, num_layers=4)  # conv2, bn2, fc (relu2, gap skipped)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())

    def changed(m):
        return {
            k.rsplit(".", 1)[0] for k, v in m.state_dict().items() if not torch.equal(state[k], v)
        }

    assert changed(one) == {leaves[4]}
    assert changed(casc) == {"features.conv2", "features.bn2", "fc"}
    # same seed, same copy; the layer's values agree between the two calls
    torch.testing.assert_close(one.features.conv2.weight, casc.features.conv2.weight)
    with pytest.raises(ParameterError, match="no parameters"):
        randomize_model_parameters(model, 2, num_layers=1)
    with pytest.raises(ParameterError):
        randomize_model_parameters(model, 20)
