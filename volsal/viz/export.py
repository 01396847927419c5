"""Write figures atomically and close them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..errors import FileExistsRefusedError, ParameterError, VolsalIOError
from ..io.atomic import atomic_output

__all__ = ["save_figure", "atomic_output", "check_target"]


def check_target(path: str | Path, overwrite: bool) -> Path:
    """Fail before any work if ``path`` exists (and not ``overwrite``) or its folder is missing."""
    dest = Path(path)
    if dest.is_dir():
        raise VolsalIOError(f"{dest} is a folder; give a file path.")
    if dest.exists() and not overwrite:
        raise FileExistsRefusedError(
            f"{dest} already exists; refusing to overwrite it. Pass overwrite=True to replace "
            "it, or choose another path."
        )
    if not dest.parent.is_dir():
        raise VolsalIOError(f"cannot write {dest}: folder {dest.parent} does not exist.")
    return dest


def save_figure(
    fig: Figure,
    path: str | Path,
    overwrite: bool = False,
    *,
    dpi: float | None = 100,
    close: bool = True,
    **savefig_kwargs: Any,
) -> Path:
    """Save ``fig`` atomically (temp file in the same folder, then rename) and close it.

    The format comes from the suffix (``.png``, ``.pdf``, ``.svg``...). The figure is closed
    (``plt.close``) whether or not saving succeeded, unless ``close=False``.

    Args:
        fig: the figure. path: destination file (its folder must exist).
        overwrite: replace an existing file; otherwise raise.
        dpi: resolution. close: close the figure afterwards.
        **savefig_kwargs: passed to ``Figure.savefig`` (e.g. ``bbox_inches="tight"``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileExistsRefusedError: ``path`` exists and ``overwrite`` is False.
        ParameterError: no suffix in ``path``. VolsalIOError: folder missing.
    """
    try:
        dest = Path(path)
        if not dest.suffix:
            raise ParameterError(f"{dest} has no suffix; name the format, e.g. '.png'.")
        with atomic_output(dest, overwrite) as tmp:
            fig.savefig(tmp, format=dest.suffix[1:].lower(), dpi=dpi, **savefig_kwargs)
        return dest
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
