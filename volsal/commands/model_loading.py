"""Loading a model for the command line, safely.

Accepted forms:

- ``--model demo``: the bundled demo classifier.
- ``--model file.pt``: a TorchScript archive (``torch.jit.save``) or a ``torch.export``
  program (``.pt2``). These hold code as graphs, not pickles.
- ``--model-factory pkg.module:function [--factory-kwargs JSON] --weights file``: the function
  builds the architecture, the weights are a state dict read with
  ``torch.load(weights_only=True)`` (no code runs while reading).
- ``--model pickled.pt --trust-pickle``: a whole pickled module. Unpickling runs arbitrary code,
  so it is refused unless the user says they trust the file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import ParameterError, VolsalIOError

__all__ = ["add_model_arguments", "load_model_from_args"]


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        help="'demo', a TorchScript file, a torch.export .pt2 file, or (with --trust-pickle) "
        "a pickled nn.Module",
    )
    g.add_argument("--model-factory", metavar="PKG.MODULE:FUNCTION", help="builds the model")
    g.add_argument("--factory-kwargs", default="{}", metavar="JSON", help="keyword arguments")
    g.add_argument("--weights", help="state dict for --model-factory (read with weights_only)")
    g.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling a whole model object (runs code from the file: trusted files only)",
    )


def _import_callable(spec: str):
    if ":" not in spec:
        raise ParameterError(
            f"--model-factory must look like 'package.module:function'; got {spec!r}."
        )
    modname, fname = spec.split(":", 1)
    try:
        mod = importlib.import_module(modname)
    except ImportError as err:
        raise ParameterError(f"cannot import {modname!r} for --model-factory: {err}") from None
    fn = getattr(mod, fname, None)
    if not callable(fn):
        raise ParameterError(f"{modname!r} has no callable {fname!r} (from --model-factory).")
    return fn


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def load_model_from_args(args: argparse.Namespace, device: str | torch.device = "cpu") -> nn.Module:
    """Build/load the model described by the command-line arguments, in eval mode."""
    if args.model_factory:
        fn = _import_callable(args.model_factory)
        try:
            kwargs = json.loads(args.factory_kwargs)
        except json.JSONDecodeError as err:
            raise ParameterError(f"--factory-kwargs is not valid JSON: {err}") from None
        model = fn(**kwargs)
        if not isinstance(model, nn.Module):
            raise ParameterError(
                f"{args.model_factory} returned {type(model).__name__}, not a module."
            )
        if args.weights:
            state = _load_weights(Path(args.weights))
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as err:  # shape mismatches
                raise ParameterError(
                    f"the weights in {args.weights} do not fit the factory's model: "
                    f"{str(err).splitlines()[-1].strip()}"
                ) from None
            if missing or unexpected:
                raise ParameterError(
                    f"the weights in {args.weights} do not fit the factory's model: missing "
                    f"{list(missing)[:5]}, unexpected {list(unexpected)[:5]}."
                )
        return model.to(device).eval()
    if not args.model:
        raise ParameterError("no model given: use --model FILE, --model demo, or --model-factory.")
    if args.model == "demo":
        from ..demo import load_demo_model

        return load_demo_model().to(device).eval()
    path = Path(args.model)
    if not path.is_file():
        raise VolsalIOError(f"model file {path} does not exist.")
    if path.suffix == ".pt2":
        try:
            return torch.export.load(str(path)).module().to(device)
        except Exception as err:  # noqa: BLE001 - report any loader failure plainly
            raise VolsalIOError(f"cannot load {path} as a torch.export program: {err}") from None
    if _is_zip(path):
        try:
            return torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError:
            pass  # a zip that is not TorchScript: probably torch.save of a pickled object
    if not args.trust_pickle:
        raise ParameterError(
            f"{path} is not a TorchScript or torch.export file. Loading a pickled model runs code "
            "stored in the file; volsal refuses unless you pass --trust-pickle (only for files "
            "you trust). Safer: --model-factory pkg.module:function --weights state_dict.pt, or "
            "save the model with torch.jit.script(model).save(...)."
        )
    obj = torch.load(str(path), map_location=device, weights_only=False)
    if not isinstance(obj, nn.Module):
        raise ParameterError(
            f"{path} holds a {type(obj).__name__}, not a model. A state dict needs --model-factory."
        )
    return obj.eval()


def _load_weights(path: Path) -> dict:
    if not path.is_file():
        raise VolsalIOError(f"weights file {path} does not exist.")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise ParameterError(
            f"cannot read {path} as a plain state dict with weights_only=True ({err}). Save it with "
            "torch.save(model.state_dict(), path)."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParameterError(f"{path} does not hold a state dict.")
    return state
