"""Rebuild the chapter's shipped files (``course_lib/recipes/checkpoints/seq2seq_*``):

* ``python -m course_lib.recipes.seq2seq pretrain t5|bart|pegasus``: one pre-trained checkpoint;
* ``python -m course_lib.recipes.seq2seq finetune``: the fine-tuning comparison that the chapter
  plots (it needs the T5 and BART checkpoints);
* ``python -m course_lib.recipes.seq2seq translator``: the number translator trained from scratch;
* ``python -m course_lib.recipes.seq2seq text-to-text``: the summarization + QA run's results.
"""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.recipes.seq2seq",
                                     description="Rebuild one of the encoder-decoder chapter's shipped files.")
    commands = parser.add_subparsers(dest="command", required=True)
    pre = commands.add_parser("pretrain", help="pre-train with one objective and save the checkpoint")
    pre.add_argument("objective", choices=("bart", "pegasus", "t5"))
    pre.add_argument("--steps", type=int, default=None, help="default: the objective's shipped number of steps")
    fine = commands.add_parser("finetune",
                               help="choose learning rates on dev pairs, then fine-tune every start over seeds")
    translator = commands.add_parser("translator", help="train the number translator from scratch and save it")
    text_to_text = commands.add_parser("text-to-text", help="train the summarization + QA model, save its results")
    for command in (pre, fine, translator, text_to_text):
        command.add_argument("--out", default=None, help="where to write (default: the shipped file's path)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # tiny models: one thread is about as fast, and the timings are comparable
    if args.command == "finetune":
        from .transfer import RESULTS, transfer_experiment

        transfer_experiment(path=args.out or RESULTS)
    elif args.command == "translator":
        from .trained_ahead import save_translator

        print({k: v for k, v in save_translator(args.out)["metrics"].items() if k != "predictions_before"})
    elif args.command == "text-to-text":
        from .trained_ahead import save_text_to_text

        print(save_text_to_text(args.out)["metrics"]["greedy"])
    else:
        from .pretraining import CHECKPOINT_STEPS, save_checkpoint

        steps = args.steps or CHECKPOINT_STEPS[args.objective]
        print(args.objective, save_checkpoint(args.objective, args.out, steps=steps)["metrics"])


if __name__ == "__main__":
    main()
