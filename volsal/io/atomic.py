"""Safe file writing: temporary file in the target folder, fsync, atomic rename.

A reader never sees a half-written file, a failure mid-write leaves nothing behind, and an
existing file is never replaced unless the caller says ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import FileExistsRefusedError, VolsalIOError

__all__ = ["atomic_write", "atomic_output", "full_suffix", "check_writable"]

# multi-part suffixes that writers dispatch on (nibabel / SimpleITK pick the format by name)
_DOUBLE = (".nii.gz", ".nrrd.gz", ".mgh.gz", ".tar.gz")


def full_suffix(path: str | Path) -> str:
    """The format-defining suffix, e.g. ``".nii.gz"`` for ``scan.nii.gz``, ``".png"``."""
    name = Path(path).name.lower()
    for s in _DOUBLE:
        if name.endswith(s):
            return s
    return Path(path).suffix.lower()


def check_writable(path: str | Path, overwrite: bool) -> Path:
    """Fail early (before any work) if ``path`` exists and ``overwrite`` is False."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsRefusedError(
            f"{p} already exists; refusing to overwrite it. Pass overwrite=True (CLI: "
            "--overwrite) to replace it, or choose another path."
        )
    if p.exists() and p.is_dir():
        raise VolsalIOError(f"{p} is a folder; give a file path to write to.")
    return p


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. Windows)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | Path,
    write_fn: Callable[[Path], object],
    overwrite: bool = False,
) -> Path:
    """Write ``path`` through ``write_fn(tmp_path)`` so that it appears complete or not at all.

    The temporary file lives in the target folder (same filesystem, so the rename is atomic)
    and keeps the real suffix (``.nii.gz``, ``.nrrd``, ``.png``...) because writers choose the
    format from the name. After ``write_fn`` returns, the file is fsynced and moved into place
    with ``os.replace`` (or a hard link when overwriting is refused, so a file created
    meanwhile by someone else is not clobbered either).

    Args:
        path: destination file; its folder must exist.
        write_fn: called with the temporary path; must write the complete file there.
        overwrite: replace an existing ``path``; otherwise raise.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileExistsRefusedError: ``path`` exists and ``overwrite`` is False.
        VolsalIOError: the folder does not exist or ``write_fn`` wrote nothing.
        Exception: whatever ``write_fn`` raises (the temporary file is removed first).
    """
    with atomic_output(path, overwrite) as tmp:
        write_fn(tmp)
    return Path(path)


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Context-manager form of :func:`atomic_write`: yields the temporary sibling path to write.

    On a clean exit the file gets the usual permissions (``0o666`` less the umask; ``mkstemp``
    alone would leave ``0o600``), is fsynced and moved to ``path``; on an exception it is
    removed and ``path`` is untouched.
    """
    dest = check_writable(path, overwrite)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise VolsalIOError(
            f"cannot write {dest}: folder {folder} does not exist. Create it first."
        )
    suffix = full_suffix(dest)
    stem = dest.name[: len(dest.name) - len(suffix)] if suffix else dest.name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise VolsalIOError(f"writing {dest} produced no data (the writer wrote nothing).")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _move_into_place(tmp, dest, overwrite)
        _fsync_dir(folder)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _move_into_place(tmp: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails if dest appeared meanwhile: never clobber
    except FileExistsError:
        raise FileExistsRefusedError(
            f"{dest} was created while writing; refusing to overwrite it. "
            "Pass overwrite=True to replace it."
        ) from None
    except OSError:  # filesystem without hard links
        if dest.exists():
            raise FileExistsRefusedError(
                f"{dest} already exists; pass overwrite=True to replace it."
            ) from None
        os.replace(tmp, dest)
