"""The ``volsal`` command: ``volsal demo``, ``volsal explain``, ``volsal layers``, ``volsal methods``.

Exit codes: 0 success, 2 usage errors (bad flags, bad values, refused overwrite), 1 other
errors. Messages go to stderr and name the fix; user errors print no traceback
(``VOLSAL_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .errors import (
    FileExistsRefusedError,
    InputShapeError,
    LayerNotFoundError,
    ParameterError,
    TargetError,
    VolsalError,
)

__all__ = ["main", "build_parser"]

#: sub-command name -> module under volsal.commands defining ``add_parser(sub)`` and ``run(args)``
COMMANDS = {
    "demo": "volsal.commands.demo",
    "explain": "volsal.commands.explain",
    "layers": "volsal.commands.layers",
    "methods": "volsal.commands.methods",
}

#: errors caused by what the user asked for: exit code 2
USAGE_ERRORS = (
    FileExistsRefusedError,
    ParameterError,
    TargetError,
    LayerNotFoundError,
    InputShapeError,
)


class UsageError(VolsalError, ValueError):
    """A command-line usage error (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volsal",
        description="Saliency maps for 2D and 3D medical-imaging CNNs, on the scan's grid.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log choices made (INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS.values():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as err:
            if err.name != modname:
                raise
            continue
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"volsal {__version__}")
        return 0
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except (UsageError, *USAGE_ERRORS) as err:
        if os.environ.get("VOLSAL_DEBUG"):
            raise
        print(f"volsal {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (VolsalError, OSError) as err:
        if os.environ.get("VOLSAL_DEBUG"):
            raise
        print(f"volsal {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("volsal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
