"""``volsal methods``: list the registered methods with their paper references."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    return sub.add_parser("methods", help="list the saliency methods", description=__doc__)


def run(args: argparse.Namespace) -> int:
    from ..methods import REGISTRY

    width = max(len(n) for n in REGISTRY)
    for name, info in REGISTRY.items():
        shape = "(B, 1, *spatial)" if info.kind == "cam" else "(B, C, *spatial)"
        print(f"{name:<{width}}  {info.cls.__name__:<22} {shape:<17} {info.reference}")
    return 0
