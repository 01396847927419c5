"""Shared helpers for the volsal.io tests: affines with any orientation, obliquity, spacing."""

from __future__ import annotations

import nibabel as nib
import numpy as np


def make_affine(codes="RAS", spacing=(1.0, 1.0, 1.0), angle=0.0, origin=(0.0, 0.0, 0.0)):
    """4x4 RAS affine whose voxel axes point along ``codes`` (e.g. "LIA"), rotated by ``angle``
    radians about z then ``angle / 2`` about x (oblique), with anisotropic ``spacing``."""
    ornt = nib.orientations.axcodes2ornt(tuple(codes))
    perm = np.zeros((3, 3))
    for i, (ax, flip) in enumerate(ornt):
        perm[int(ax), i] = flip
    c, s = np.cos(angle), np.sin(angle)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    c2, s2 = np.cos(angle / 2), np.sin(angle / 2)
    rx = np.array([[1, 0, 0], [0, c2, -s2], [0, s2, c2]])
    a = np.eye(4)
    a[:3, :3] = rx @ rz @ perm @ np.diag(spacing)
    a[:3, 3] = origin
    return a


GEOMETRIES = {
    "ras_iso": make_affine("RAS", (1.0, 1.0, 1.0), 0.0, (-10.0, 5.0, 2.0)),
    "lps_aniso": make_affine("LPS", (0.8, 1.2, 3.0), 0.0, (40.0, -20.0, 7.5)),
    "lia_oblique": make_affine("LIA", (1.5, 0.7, 2.5), 0.35, (12.0, -30.0, 18.0)),
    "psr_oblique": make_affine("PSR", (2.0, 1.1, 0.9), -0.6, (0.0, 3.0, -9.0)),
}


def random_volume(shape=(12, 14, 10), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def sitk_index_to_ras(img, idx):
    """World RAS mm of voxel ``idx`` (x, y, z) of a SimpleITK image (which works in LPS)."""
    p = np.asarray(img.TransformIndexToPhysicalPoint([int(i) for i in idx]), dtype=float)
    return np.array([-p[0], -p[1], p[2]])
