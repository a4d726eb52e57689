"""``python -m course_lib.recipes.encoder mlm|electra``: rebuild one of the shipped checkpoints."""
from __future__ import annotations

import argparse

from .pretraining import CHECKPOINT_STEPS, CHECKPOINTS, save_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.recipes.encoder",
                                     description="Pre-train one of the chapter's models and save its checkpoint.")
    parser.add_argument("kind", choices=sorted(CHECKPOINTS))
    parser.add_argument("--steps", type=int, default=CHECKPOINT_STEPS)
    parser.add_argument("--out", default=None, help="where to save it (default: the shipped checkpoint's path)")
    args = parser.parse_args(argv)
    print(save_checkpoint(args.kind, args.out, steps=args.steps)["metrics"])


if __name__ == "__main__":
    main()
