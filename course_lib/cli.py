"""The ``course`` command: one entry point for learners and instructors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_info(args) -> int:
    import torch

    from .device import available_devices, pick_device

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"devices present: {', '.join(available_devices())}; default: {pick_device()}")
    return 0


def _cmd_release(args) -> int:
    from .grading import release_all

    for path in release_all(Path(args.root), args.assignment or None):
        print(f"released {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Transformers, Piece by Piece: tools for learners and instructors.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show the torch version and the devices course_lib will use")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("release", help="regenerate exercises/ from solutions/ with nbgrader")
    p.add_argument("assignment", nargs="*", help="assignments to release (default: all)")
    p.add_argument("--root", default=".", help="course root holding solutions/ and exercises/")
    p.set_defaults(func=_cmd_release)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as err:  # bad input or a failed step: a clear message
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
