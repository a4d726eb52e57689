"""``python -m course_lib.recipes.encoder mlm|electra|finetune``: rebuild one of the shipped checkpoints,
or rerun the fine-tuning comparison that the chapter plots (it needs the two checkpoints)."""
from __future__ import annotations

import argparse

from .pretraining import CHECKPOINT_STEPS, CHECKPOINTS, save_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.recipes.encoder",
                                     description="Pre-train one of the chapter's models and save its checkpoint, "
                                                 "or rerun the fine-tuning comparison (finetune).")
    parser.add_argument("kind", choices=sorted([*CHECKPOINTS, "finetune"]))
    parser.add_argument("--steps", type=int, default=CHECKPOINT_STEPS, help="pre-training steps (mlm, electra)")
    parser.add_argument("--out", default=None, help="where to save it (default: the shipped file's path)")
    args = parser.parse_args(argv)
    if args.kind == "finetune":
        from .transfer import RESULTS, transfer_experiment

        transfer_experiment(path=args.out or RESULTS)
        return
    print(save_checkpoint(args.kind, args.out, steps=args.steps)["metrics"])


if __name__ == "__main__":
    main()
