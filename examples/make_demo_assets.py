"""Build the bundled demo assets of ``volsal demo`` (weights, volumes, masks, metadata).

What it does, reproducibly from ``--seed``:

1. Reads the ICBM 2009a nonlinear symmetric MNI152 T1 template and its grey/white-matter maps
   as shipped in the nilearn wheel (``nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_
   converted.nii.gz``; 1 mm, brain-extracted), found without importing nilearn.
2. Derives a 3 mm grid around the brain: each 3 mm voxel is the mean of the 3x3x3 template
   voxels it covers (the grid's origin sits on the template's integer-mm lattice, so this is
   exact), on a (64 + 2 * MAX_SHIFT)^3 grid so that shifted 64^3 crops need no padding. The
   affine of every crop is exact in the template's RAS (MNI) world space: the volumes overlay
   the template in any viewer.
3. Synthetic task: label 1 = a lesion-like blob (a randomly rotated ellipsoid with a soft edge,
   radii 3-6 voxels, intensity change +-0.5..1.0 of the mean brain intensity, bright or dark)
   centred at a random place inside the grey/white matter; label 0 = no blob. Augmentation:
   random shift of up to MAX_SHIFT voxels per axis (the affine follows it), smooth
   multiplicative bias field (quadratic polynomial, exp), global intensity scaling, Gaussian
   noise.
4. Trains :class:`volsal.demo.model.DemoNet3D` on freshly generated samples in two stages:
   1500 steps of 16 crops of 32^3 around random grey/white-matter points (the lesion detector
   learns fast where a crop's global average is little diluted), then 2000 steps of 8 full
   64^3 volumes. The loss is the classification cross-entropy plus (``--cam-weight``, default
   1) a cross-entropy on the class activation map: the classifier applied to each
   ``features.block4`` cell against "this cell holds lesion voxels". In a trial without it
   (2500 + 600 steps) validation accuracy was 0.88, but the Grad-CAM peak fell within 8
   voxels of the lesion centre in only 13 of 20 cases (20 of 20 with it).
   Accuracy is then measured on 400 held-out generated 64^3 volumes.
5. Writes into ``volsal/demo/assets/``: ``demo_net.pt`` (state_dict), ``example_lesion`` and
   ``case_01..03`` volumes with masks (int16 + scl_slope, gzip), ``brain_mask.nii.gz``,
   ``metadata.json`` and ``LICENSE-MNI.txt``; and checks with a hand-written Grad-CAM at
   ``features.block4`` on 20 fresh lesion cases that the model looks at the lesion.

The bundled assets were made with (one GPU, about a minute; sample generation runs in the
DataLoader workers)::

    python examples/make_demo_assets.py --seed 0 --device cuda --workers 7 --threads 1

The same command with ``--device cpu`` (the default) trains the same way on the CPU; from
measured step times that takes roughly half an hour on 2 idle cores, and its weights will differ
from the GPU run's (same seed and samples, different arithmetic). ``--template-dir`` points at a folder holding the three template
files when nilearn is not installed.

Template: Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal
Neurological Institute, McGill University (full notice in ``volsal/demo/assets/LICENSE-MNI.txt``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from volsal.demo import read_volume
from volsal.demo.model import DemoNet3D

log = logging.getLogger("volsal.make_demo_assets")

SIZE = 64
SPACING = 3  # mm, an integer multiple of the template's 1 mm voxels
MAX_SHIFT = 2  # voxels per axis
RADIUS_RANGE = (3.0, 6.0)  # voxels
AMPLITUDE_RANGE = (0.5, 1.0)  # in units of the template's mean brain intensity
EDGE_WIDTH = 0.6  # voxels, logistic edge of the blob
CENTRE_MARGIN = 6  # voxels from the crop border
NOISE_RANGE = (0.02, 0.08)
SCALE_RANGE = (0.85, 1.15)
BIAS_STD = 0.08
CAM_LAYER = "features.block4"
CAM_STRIDE = 8  # input voxels per block4 cell
CAM_OFFSET = 3.0  # block4 cell o is centred on input voxel 8 * o + 3

TEMPLATE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"

MNI_NOTICE = """\
The demo volumes in this folder (example_lesion*.nii.gz, case_*.nii.gz, brain_mask.nii.gz) are
derived from the ICBM 2009a Nonlinear Symmetric MNI152 T1 template and its grey/white-matter
probability maps (mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a), as shipped in the nilearn wheel
(nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz). They were resampled to
3 mm, cropped to 64^3, and synthetic lesion-like blobs, noise and bias fields were added by
examples/make_demo_assets.py. Original atlases:
http://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009

The original images carry the following notice (where 'software' refers to the images):

Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre,
Montreal Neurological Institute, McGill University.

Permission to use, copy, modify, and distribute this software and its
documentation for any purpose and without fee is hereby granted, provided
that the above copyright notice appear in all copies.  The authors and
McGill University make no representations about the suitability of this
software for any purpose.  It is provided "as is" without express or
implied warranty.  The authors are not responsible for any data loss,
equipment damage, property loss, or injury to subjects or patients
resulting from the use or misuse of this software package.

References:
VS Fonov, AC Evans, K Botteron, CR Almli, RC McKinstry, DL Collins and BDCG, Unbiased average
age-appropriate atlases for pediatric studies, NeuroImage 54(1), 2011,
doi:10.1016/j.neuroimage.2010.07.033
VS Fonov, AC Evans, RC McKinstry, CR Almli and DL Collins, Unbiased nonlinear average
age-appropriate brain templates from birth to adulthood, NeuroImage 47(S1), 2009, S102,
doi:10.1016/S1053-8119(09)70884-5
DL Collins, AP Zijdenbos, WFC Baaré and AC Evans, ANIMAL+INSECT: Improved Cortical Structure
Segmentation, IPMI 1999, LNCS 1613, 210-223
"""


# --------------------------------------------------------------------------- template, grid


@dataclass
class Base:
    """The template on the padded 3 mm grid (all arrays ``(N, N, N)``, N = SIZE + 2 * MAX_SHIFT)."""

    t1: np.ndarray  # float32, T1 / mean T1 inside the brain
    brain: np.ndarray  # bool, inside the (brain-extracted) template
    brain_soft: np.ndarray  # float32 in [0, 1], the brain mask smoothed by 0.7 voxel
    centre_ok: np.ndarray  # bool, allowed lesion centres (grey/white matter, eroded)
    centre_list: np.ndarray  # (K, 3) voxels of centre_ok inside the 64^3 grid's margins
    affine: np.ndarray  # float64 (4, 4), padded grid voxel -> MNI world mm
    t1_scale: float  # the divisor applied to the raw template


def template_dir(folder: Path | None = None) -> Path:
    """The folder of nilearn's bundled MNI152 templates, found without importing nilearn."""
    if folder is not None:
        return folder
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nilearn is needed to build the demo assets: pip install nilearn")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if not (folder / TEMPLATE.format("t1")).is_file():
        raise SystemExit(f"no ICBM 2009a template in {folder}; reinstall nilearn")
    return folder


def build_base(folder: Path | None = None) -> Base:
    """Resample the 1 mm template to a padded 3 mm grid centred on the brain."""
    import nibabel as nib

    folder = template_dir(folder)
    imgs = {n: nib.load(str(folder / TEMPLATE.format(n))) for n in ("t1", "gm", "wm")}
    src_affine = imgs["t1"].affine
    for name, img in imgs.items():
        if not np.allclose(img.affine, src_affine) or img.shape != imgs["t1"].shape:
            raise SystemExit(f"template {name} is not on the T1 grid")
    if not np.allclose(src_affine[:3, :3], np.eye(3)):
        raise SystemExit("expected a 1 mm RAS template grid")
    t1 = imgs["t1"].get_fdata(dtype=np.float32)
    tissue = (imgs["gm"].get_fdata(dtype=np.float32) + imgs["wm"].get_fdata(dtype=np.float32)) / 255
    inside = (t1 > 0).astype(np.float32)

    # Grid: N voxels of 3 mm, centred on the brain's bounding box, origin on the integer lattice.
    n = SIZE + 2 * MAX_SHIFT
    idx = np.argwhere(tissue > 0.5)
    centre_world = src_affine[:3, :3] @ ((idx.min(0) + idx.max(0)) / 2) + src_affine[:3, 3]
    origin = np.round(centre_world - SPACING * (n - 1) / 2)
    affine = np.eye(4)
    affine[:3, :3] *= SPACING
    affine[:3, 3] = origin

    # Each 3 mm voxel = mean of the 3^3 template voxels around its centre (exact box filter).
    vox = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), 0).reshape(3, -1)
    src_vox = np.linalg.solve(src_affine, affine @ np.vstack([vox, np.ones((1, vox.shape[1]))]))

    def sample(vol: np.ndarray) -> np.ndarray:
        box = ndimage.uniform_filter(vol, size=SPACING, mode="constant")
        out = ndimage.map_coordinates(box, src_vox[:3], order=1, mode="constant", cval=0.0)
        return out.reshape(n, n, n).astype(np.float32)

    t1_ds, tissue_ds, inside_ds = sample(t1), sample(tissue), sample(inside)
    brain = ndimage.binary_fill_holes(inside_ds >= 0.5)
    scale = float(t1_ds[brain].mean())
    centre_ok = ndimage.binary_erosion(tissue_ds >= 0.5, iterations=1)
    inner = np.zeros_like(centre_ok)
    lo, hi = MAX_SHIFT + CENTRE_MARGIN, n - MAX_SHIFT - CENTRE_MARGIN
    inner[lo:hi, lo:hi, lo:hi] = True
    log.info(
        "grid %d^3 x %d mm, origin %s, brain %d voxels",
        n,
        SPACING,
        origin.tolist(),
        int(brain.sum()),
    )
    return Base(
        t1=(t1_ds / scale).astype(np.float32),
        brain=brain,
        brain_soft=ndimage.gaussian_filter(brain.astype(np.float32), 0.7),
        centre_ok=centre_ok,
        centre_list=np.argwhere(inner & centre_ok).astype(float),
        affine=affine,
        t1_scale=scale,
    )


def crop_affine(base: Base, shift: np.ndarray) -> np.ndarray:
    """Affine of the 64^3 crop that starts at padded-grid voxel ``MAX_SHIFT + shift``."""
    out = base.affine.copy()
    out[:3, 3] = base.affine[:3, :3] @ (MAX_SHIFT + np.asarray(shift, float)) + base.affine[:3, 3]
    return out


# --------------------------------------------------------------------------- samples

_BOX = 10  # half-width (voxels) of the box in which a blob is computed


@dataclass
class Sample:
    x: np.ndarray  # float32 (S, S, S), the network input
    mask: np.ndarray  # bool (S, S, S), the lesion
    label: int
    affine: np.ndarray  # (4, 4)
    info: dict


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def add_blob(
    rng: np.random.Generator,
    vol: np.ndarray,
    brain_soft: np.ndarray,
    centre: np.ndarray,
    min_radius: float | None,
    sign: int | None,
) -> tuple[np.ndarray, dict]:
    """Add a soft-edged rotated ellipsoid at ``centre`` (voxels) to ``vol`` in place.

    Returns:
        The blob's soft profile in [0, 1] over the whole volume, and its parameters.
    """
    lo = RADIUS_RANGE[0] if min_radius is None else max(RADIUS_RANGE[0], min_radius)
    radii = rng.uniform(lo, RADIUS_RANGE[1], 3)
    rot = random_rotation(rng)
    amp = rng.uniform(*AMPLITUDE_RANGE) * (sign if sign is not None else rng.choice([-1, 1]))
    c0 = np.round(centre).astype(int)
    box = tuple(
        slice(max(0, c - _BOX), min(n, c + _BOX + 1)) for c, n in zip(c0, vol.shape, strict=True)
    )
    axes = [np.arange(s.start, s.stop, dtype=np.float32) - c for s, c in zip(box, centre)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), 0)
    u = np.einsum("ji,j...->i...", rot.astype(np.float32), grid) / radii[:, None, None, None]
    r = np.sqrt((u * u).sum(0))
    soft = np.zeros(vol.shape, dtype=np.float32)
    soft[box] = 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * radii.mean() / EDGE_WIDTH, -50, 50)))
    vol += (amp * soft * brain_soft).astype(np.float32)
    info = {
        "centre_voxel": centre.tolist(),
        "radii_voxels": radii.tolist(),
        "intensity_change": float(amp),
        "polarity": "bright" if amp > 0 else "dark",
    }
    return soft, info


def make_sample(
    rng: np.random.Generator,
    base: Base,
    lesion: bool | None = None,
    sign: int | None = None,
    min_radius: float | None = None,
    min_offcentre: float = 0.0,
    z_range: tuple[int, int] | None = None,
    size: int = SIZE,
) -> Sample:
    """One synthetic volume: template window (+ lesion) + bias field, scaling and noise.

    With ``size == SIZE`` the window is the 64^3 grid shifted by up to MAX_SHIFT voxels; with a
    smaller ``size`` (training warm-up) it is a crop around a random grey/white-matter point,
    where the lesion is centred for label 1 (jittered), so both labels see the same anatomy.

    Args:
        rng: the random stream.
        base: the template on the padded grid.
        lesion: force the label (default: a fair coin).
        sign: force a bright (+1) or dark (-1) lesion.
        min_radius: smallest allowed radius (voxels), for clearly visible examples.
        min_offcentre: smallest distance (voxels) of the lesion centre from the volume centre.
        z_range: allowed range of the lesion centre's third voxel index (axial slice).
        size: edge of the cubic window (voxels).
    """
    if lesion is None:
        lesion = bool(rng.random() < 0.5)
    n = base.t1.shape[0]
    if size == SIZE:
        start = MAX_SHIFT + rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=3)
        ok = base.centre_ok[tuple(slice(s, s + size) for s in start)].copy()
        m = CENTRE_MARGIN
        border = np.ones_like(ok)
        border[m:-m, m:-m, m:-m] = False
        ok[border] = False
        cand = np.argwhere(ok).astype(float)
        if min_offcentre > 0:
            cand = cand[np.linalg.norm(cand - (SIZE - 1) / 2, axis=1) >= min_offcentre]
        if z_range is not None:
            cand = cand[(cand[:, 2] >= z_range[0]) & (cand[:, 2] < z_range[1])]
        centre = cand[rng.integers(len(cand))] + rng.uniform(-0.5, 0.5, 3)
    else:
        anchor = base.centre_list[rng.integers(len(base.centre_list))] + rng.uniform(-0.5, 0.5, 3)
        jitter = rng.uniform(-size / 4, size / 4, 3)
        start = np.clip(np.round(anchor + jitter - size / 2), 0, n - size).astype(int)
        centre = anchor - start
    window = tuple(slice(s, s + size) for s in start)
    vol = base.t1[window].copy()
    brain = base.brain[window]
    mask = np.zeros((size,) * 3, dtype=bool)
    info: dict = {"shift_voxels": (start - MAX_SHIFT).tolist()}
    if lesion:
        soft, blob = add_blob(rng, vol, base.brain_soft[window], centre, min_radius, sign)
        mask = (soft >= 0.5) & brain
        info.update(blob)
    # Smooth multiplicative bias field: exp of a random quadratic polynomial over the 64^3
    # grid's [-1, 1]^3 (the same field whatever the window).
    x, y, z = (
        ((np.arange(size, dtype=np.float32) + s - MAX_SHIFT) / (SIZE - 1) * 2 - 1)[sh]
        for s, sh in zip(start, [np.s_[:, None, None], np.s_[None, :, None], np.s_[None, None, :]])
    )
    c = rng.normal(0.0, BIAS_STD, size=9).astype(np.float32)
    field = (
        c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * y * z + c[5] * x * z
        + c[6] * (x * x - 1 / 3) + c[7] * (y * y - 1 / 3) + c[8] * (z * z - 1 / 3)
    )  # fmt: skip
    scale = rng.uniform(*SCALE_RANGE)
    sigma = rng.uniform(*NOISE_RANGE)
    vol *= np.exp(field) * np.float32(scale)
    vol += rng.standard_normal(vol.shape, dtype=np.float32) * np.float32(sigma)
    info.update(intensity_scale=float(scale), noise_sigma=float(sigma))
    affine = base.affine.copy()
    affine[:3, 3] = base.affine[:3, :3] @ start + base.affine[:3, 3]
    return Sample(vol, mask, int(lesion), affine, info)


def make_batch(
    rng: np.random.Generator, base: Base, n: int, size: int = SIZE, masks: bool = False
) -> tuple[torch.Tensor, ...]:
    """``(x (n, 1, S, S, S), y (n,))``, plus the lesion masks ``(n, S, S, S)`` if ``masks``."""
    samples = [make_sample(rng, base, size=size) for _ in range(n)]
    x = torch.from_numpy(np.stack([s.x for s in samples]))[:, None]
    y = torch.tensor([s.label for s in samples])
    if masks:
        return x, y, torch.from_numpy(np.stack([s.mask for s in samples]))
    return x, y


class SampleStream(torch.utils.data.IterableDataset):
    """An endless stream of ``(x, y, mask)`` samples; worker ``w`` draws from
    ``[seed, key, size, w]``."""

    def __init__(self, base: Base, seed: int, size: int, key: int = 1) -> None:
        self.base, self.seed, self.size, self.key = base, seed, size, key

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = 0 if info is None else info.id
        rng = np.random.default_rng([self.seed, self.key, self.size, wid])
        while True:
            s = make_sample(rng, self.base, size=self.size)
            yield torch.from_numpy(s.x)[None], s.label, torch.from_numpy(s.mask)


def generate(base: Base, seed: int, key: int, n: int, workers: int) -> tuple:
    """``n`` fixed 64^3 samples ``(x, y)`` from stream ``key`` (validation, evaluation)."""
    per = -(-n // max(workers, 1))  # one batch per worker, so they generate in parallel
    loader = iter(
        torch.utils.data.DataLoader(
            SampleStream(base, seed, SIZE, key), batch_size=per, num_workers=workers
        )
    )
    xs, ys = zip(*[next(loader)[:2] for _ in range(-(-n // per))], strict=True)
    return torch.cat(xs)[:n], torch.cat(ys)[:n]


# --------------------------------------------------------------------------- training


def evaluate(model: DemoNet3D, x: torch.Tensor, y: torch.Tensor, batch: int = 16) -> float:
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        pred = torch.cat(
            [model(x[i : i + batch].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch)]
        )
    return float((pred == y).float().mean())


def cell_loss(model: DemoNet3D, acts: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Auxiliary loss on the class activation map: each block4 cell's logits (the classifier
    applied to the cell, whose mean over cells is the model's logit) against "does this cell
    hold lesion voxels" (Zhou et al. 2016's CAM, supervised)."""
    k = acts.shape[-1]
    cells = F.adaptive_max_pool3d(masks[:, None].float(), k)[:, 0].long()  # (B, k, k, k)
    logits = torch.einsum("bc...,nc->bn...", acts, model.classifier.weight)
    logits = logits + model.classifier.bias[None, :, None, None, None]
    return F.cross_entropy(logits, cells)


def train(
    base: Base,
    seed: int,
    stages: list[tuple[int, int, int, float]],
    val: tuple,
    device: str = "cpu",
    cam_weight: float = 0.0,
    workers: int = 0,
) -> tuple:
    """Train on freshly generated samples, stage by stage: (steps, batch, size, max lr).

    The warm-up stage on small crops teaches the lesion detector cheaply (a crop's global
    average is less diluted); the last stage on full 64^3 volumes calibrates the classifier.
    """
    torch.manual_seed(seed)
    model = DemoNet3D().to(device)
    acts: dict[str, torch.Tensor] = {}
    model.features.block4.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    history = []
    t0 = time.time()
    for stage, (steps, batch, size, lr) in enumerate(stages):
        loader = iter(
            torch.utils.data.DataLoader(
                SampleStream(base, seed, size),
                batch_size=batch,
                num_workers=workers,
                persistent_workers=False,
            )
        )
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=steps, pct_start=0.2 if stage == 0 else 0.05
        )
        recent: list[float] = []
        for step in range(steps):
            model.train()
            x, y, masks = (t.to(device) for t in next(loader))
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if cam_weight > 0:
                loss = loss + cam_weight * cell_loss(model, acts["a"], masks)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            recent.append(float((logits.argmax(1) == y).float().mean()))
            if (step + 1) % 25 == 0 or step + 1 == steps:
                log.info(
                    "stage %d (%d^3) step %d/%d  loss %.3f  running acc %.3f  %.0f s",
                    stage,
                    size,
                    step + 1,
                    steps,
                    loss.item(),
                    float(np.mean(recent[-25:])),
                    time.time() - t0,
                )
        history.append(
            {
                "steps": steps,
                "batch_size": batch,
                "size": size,
                "max_lr": lr,
                "running_accuracy_last_25_steps": round(float(np.mean(recent[-25:])), 4),
            }
        )
    train_seconds = time.time() - t0
    # Accuracy on fresh 64^3 training-distribution samples in eval mode.
    model.features.block4._forward_hooks.clear()
    x_tr, y_tr = generate(base, seed, 5, len(val[1]), workers)
    stats = {
        "n_samples": sum(s * b for s, b, _, _ in stages),
        "stages": history,
        "optimizer": "Adam, one-cycle learning rate per stage",
        "threads": torch.get_num_threads(),
        "device": device,
        "cam_supervision_weight": cam_weight,
        "train_seconds": round(train_seconds, 1),
        "train_accuracy": round(evaluate(model, x_tr, y_tr), 4),
        "val_accuracy": round(evaluate(model, *val), 4),
        "val_n": len(val[1]),
    }
    return model.cpu().eval(), stats


# --------------------------------------------------------------------------- Grad-CAM check


def gradcam_cells(model: DemoNet3D, x: torch.Tensor, target: int = 1) -> torch.Tensor:
    """Hand-written Grad-CAM at ``features.block4``: ``relu(sum_c mean(dS/dA_c) * A_c)``, 8^3."""
    acts = {}
    handle = model.features.block4.register_forward_hook(lambda m, i, o: acts.update(a=o))
    try:
        logits = model(x)
    finally:
        handle.remove()
    a = acts["a"]
    (grads,) = torch.autograd.grad(logits[:, target].sum(), a)
    w = grads.flatten(2).mean(-1)[..., None, None, None]
    return torch.relu((w * a).sum(1)).detach()


def cam_check(model: DemoNet3D, base: Base, seed: int, n: int) -> dict:
    """Where does the class-1 Grad-CAM peak on ``n`` fresh lesion cases?"""
    rng = np.random.default_rng([seed, 3])
    rows = []
    for _ in range(n):
        s = make_sample(rng, base, lesion=True)
        x = torch.from_numpy(s.x)[None, None]
        cam = gradcam_cells(model, x)[0]
        cell = np.unravel_index(int(cam.argmax()), cam.shape)
        peak_rf = np.array(cell) * CAM_STRIDE + CAM_OFFSET  # receptive-field centre of the cell
        up = F.interpolate(cam[None, None], size=(SIZE,) * 3, mode="trilinear", align_corners=False)
        peak_up = np.array(np.unravel_index(int(up.argmax()), (SIZE,) * 3), dtype=float)
        centre = np.array(s.info["centre_voxel"])
        with torch.no_grad():
            p = float(model(x).softmax(1)[0, 1])
        rows.append(
            {
                "p_lesion": round(p, 4),
                "radius_mean": round(float(np.mean(s.info["radii_voxels"])), 2),
                "polarity": s.info["polarity"],
                "dist_rf_centre": round(float(np.linalg.norm(peak_rf - centre)), 2),
                "dist_upsampled_peak": round(float(np.linalg.norm(peak_up - centre)), 2),
                "peak_in_mask": bool(
                    s.mask[tuple(np.clip(np.round(peak_up), 0, SIZE - 1).astype(int))]
                ),
            }
        )
    d_rf = np.array([r["dist_rf_centre"] for r in rows])
    d_up = np.array([r["dist_upsampled_peak"] for r in rows])
    summary = {
        "n_cases": n,
        "layer": CAM_LAYER,
        "criterion": "peak cell's receptive-field centre (8*o+3) within 8 voxels "
        "(one block4 cell) of the lesion centre",
        "hits_within_8_voxels": int((d_rf <= 8).sum()),
        "hits_within_one_radius_plus_4": int(
            sum(r["dist_rf_centre"] <= r["radius_mean"] + 4 for r in rows)
        ),
        "upsampled_peak_inside_lesion_mask": int(sum(r["peak_in_mask"] for r in rows)),
        "median_distance_rf_centre_voxels": round(float(np.median(d_rf)), 2),
        "median_distance_upsampled_peak_voxels": round(float(np.median(d_up)), 2),
        "predicted_lesion": int(sum(r["p_lesion"] > 0.5 for r in rows)),
        "cases": rows,
    }
    return summary


# --------------------------------------------------------------------------- writing


def save_nifti(data: np.ndarray, affine: np.ndarray, path: Path, dtype: type) -> None:
    """Write ``data`` with ``affine`` (sform and qform, MNI code); int16 gets scl_slope/inter."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(data), affine)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm")
    img.set_sform(affine, code=4)  # MNI_152
    img.set_qform(affine, code=4)
    if dtype == np.uint8:
        img.header.set_slope_inter(1.0, 0.0)
    nib.save(img, str(path))


def write_case(out: Path, name: str, s: Sample, model: DemoNet3D) -> dict:
    vol_file, mask_file = f"{name}.nii.gz", f"{name}_mask.nii.gz"
    save_nifti(s.x, s.affine, out / vol_file, np.int16)
    save_nifti(s.mask.astype(np.uint8), s.affine, out / mask_file, np.uint8)
    stored, aff = read_volume(out / vol_file)  # the exact network input
    with torch.no_grad():
        probs = model(torch.from_numpy(stored)[None, None]).softmax(1)[0]
    entry = {
        "file": vol_file,
        "mask_file": mask_file,
        "has_lesion": bool(s.label),
        "label": s.label,
        "predicted_class": int(probs.argmax()),
        "p_lesion": round(float(probs[1]), 6),
        "mask_voxels": int(s.mask.sum()),
        "max_abs_quantisation_error": float(np.abs(stored - s.x).max()),
        **{k: v for k, v in s.info.items() if k != "rotation"},
    }
    if s.label:
        c = np.array(s.info["centre_voxel"])
        entry["lesion_centre_voxel"] = [round(float(v), 3) for v in c]
        entry["lesion_centre_world_mm"] = [round(float(v), 3) for v in aff[:3, :3] @ c + aff[:3, 3]]
        entry["mask_centroid_voxel"] = [round(float(v), 3) for v in np.argwhere(s.mask).mean(0)]
        del entry["centre_voxel"]
    return entry


def pick_case(
    rng: np.random.Generator, base: Base, model: DemoNet3D, tries: int, **kwargs
) -> tuple[Sample, int]:
    """The first generated sample (with ``kwargs``) that the model classifies correctly with
    probability >= 0.9 (else, with a warning, the best of ``tries``)."""
    best, best_p = None, -1.0
    for k in range(tries):
        s = make_sample(rng, base, **kwargs)
        with torch.no_grad():
            p = float(model(torch.from_numpy(s.x)[None, None]).softmax(1)[0, s.label])
        if p >= 0.9:
            return s, k
        if p > best_p:
            best, best_p = s, p
    log.warning("no case with p >= 0.9 in %d tries for %s; keeping p = %.3f", tries, kwargs, best_p)
    return best, tries


def main(argv: list[str] | None = None) -> int:
    global AMPLITUDE_RANGE
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=here.parent / "volsal" / "demo" / "assets")
    ap.add_argument("--warmup-steps", type=int, default=1500, help="steps on small crops")
    ap.add_argument("--warmup-size", type=int, default=32, help="crop edge of the warm-up")
    ap.add_argument("--steps", type=int, default=2000, help="steps on full 64^3 volumes")
    ap.add_argument("--batch", type=int, default=8, help="batch size of the 64^3 stage")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--val", type=int, default=400, help="held-out validation samples")
    ap.add_argument("--cam-cases", type=int, default=20, help="cases for the Grad-CAM check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="training device (default: cpu)")
    ap.add_argument("--workers", type=int, default=0, help="sample-generating processes")
    ap.add_argument("--pick-tries", type=int, default=200, help="draws per bundled case")
    ap.add_argument(
        "--template-dir",
        type=Path,
        default=None,
        help="folder of the template files "
        "(default: nilearn/datasets/data of the installed nilearn)",
    )
    ap.add_argument(
        "--cam-weight", type=float, default=1.0, help="weight of the auxiliary CAM loss"
    )
    ap.add_argument("--amp", type=float, nargs=2, default=AMPLITUDE_RANGE)
    args = ap.parse_args(argv)
    AMPLITUDE_RANGE = tuple(args.amp)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    base = build_base(args.template_dir)
    val = generate(base, args.seed, 2, args.val, args.workers)
    stages = [
        (args.warmup_steps, 16, args.warmup_size, args.lr),
        (args.steps, args.batch, SIZE, args.lr / 3),
    ]
    model, stats = train(base, args.seed, stages, val, args.device, args.cam_weight, args.workers)
    log.info(
        "train accuracy %.3f, validation accuracy %.3f",
        stats["train_accuracy"],
        stats["val_accuracy"],
    )
    torch.save(model.state_dict(), args.out / "demo_net.pt")

    rng = np.random.default_rng([args.seed, 4])
    picks = {
        "example_lesion": dict(
            lesion=True, sign=1, min_radius=4.5, min_offcentre=14.0, z_range=(28, 44)
        ),
        "case_01": dict(lesion=True),
        "case_02": dict(lesion=True, sign=-1),
        "case_03": dict(lesion=False),
    }
    cases = {}
    for name, kwargs in picks.items():
        s, skipped = pick_case(rng, base, model, args.pick_tries, **kwargs)
        cases[name] = write_case(args.out, name, s, model)
        cases[name]["skipped_before_correct"] = skipped
        log.info("%s: %s", name, json.dumps({k: cases[name][k] for k in ("label", "p_lesion")}))

    save_nifti(
        base.brain[(slice(MAX_SHIFT, MAX_SHIFT + SIZE),) * 3].astype(np.uint8),
        crop_affine(base, np.zeros(3)),
        args.out / "brain_mask.nii.gz",
        np.uint8,
    )
    check = cam_check(model, base, args.seed, args.cam_cases)
    log.info(
        "Grad-CAM check: peak within 8 voxels of the lesion centre in %d/%d cases "
        "(median distance %.1f voxels); upsampled peak inside the mask in %d/%d",
        check["hits_within_8_voxels"],
        check["n_cases"],
        check["median_distance_rf_centre_voxels"],
        check["upsampled_peak_inside_lesion_mask"],
        check["n_cases"],
    )
    meta = {
        "description": "volsal demo: synthetic lesion detection on the ICBM 2009a MNI152 T1 "
        "template (3 mm, 64^3); built by examples/make_demo_assets.py",
        "seed": args.seed,
        "template": "ICBM 2009a nonlinear symmetric MNI152 T1 (nilearn "
        + TEMPLATE.format("t1")
        + "); licence in LICENSE-MNI.txt",
        "shape": [SIZE] * 3,
        "spacing_mm": [float(SPACING)] * 3,
        "world_space": "RAS, MNI152 mm (the template's world space); every case has its own "
        "affine (shifted by its augmentation shift)",
        "grid_affine": crop_affine(base, np.zeros(3)).tolist(),
        "normalisation": {
            "network_input": "the volume exactly as stored (float32 after applying scl_slope)",
            "how_built": "T1 / mean T1 inside the brain of the 3 mm template "
            f"({base.t1_scale:.4f}); then lesion, bias field, global scaling "
            f"{list(SCALE_RANGE)}, Gaussian noise sigma {list(NOISE_RANGE)}",
            "own_volumes": "resample to 3 mm and divide by the mean intensity inside the brain",
        },
        "model": {
            "class": "volsal.demo.model.DemoNet3D",
            "weights": "demo_net.pt",
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "classes": ["no lesion", "lesion"],
            "gradcam_layer": CAM_LAYER,
            "gradcam_cell_centre": "block4 cell o is centred on input voxel 8*o+3",
        },
        "task": {
            "lesion_radius_voxels": list(RADIUS_RANGE),
            "intensity_change": list(AMPLITUDE_RANGE),
            "edge_width_voxels": EDGE_WIDTH,
            "max_shift_voxels": MAX_SHIFT,
            "bias_field": f"exp(quadratic polynomial), coefficients N(0, {BIAS_STD})",
        },
        "training": stats,
        "brain_mask_file": "brain_mask.nii.gz",
        "cases": cases,
        "gradcam_check": {k: v for k, v in check.items() if k != "cases"},
    }
    (args.out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (args.out / "LICENSE-MNI.txt").write_text(MNI_NOTICE, encoding="utf-8")
    for row in check["cases"]:
        log.info("cam case %s", row)
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    log.info("wrote %s (%.2f MB)", args.out, total / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
