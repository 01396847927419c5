"""A factory module for the CLI tests (importable as cli_models when tests/cli is on sys.path)."""

from __future__ import annotations

from volsal.testing import tiny_cnn


def build(spatial_dims: int = 3, num_classes: int = 2):
    return tiny_cnn(spatial_dims, num_classes=num_classes)
