"""``python -m course_lib.recipes.decoder bpe|gpt|chat|lookup``: rebuild the chapter's shipped files.

``bpe`` relearns the merges (``checkpoints/decoder_bpe.json``); ``gpt`` pre-trains the GPT on
them (``decoder_gpt.pt``, about 10 minutes of one CPU core); ``chat`` reruns the chat fine-tune
from that checkpoint and from scratch over seeds (``decoder_chat.json``); ``lookup`` trains the small
GPT on the few-shot documents (``decoder_lookup.pt``).
"""
from __future__ import annotations

import argparse

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.recipes.decoder",
                                     description="Rebuild one of the decoder chapter's shipped files.")
    parser.add_argument("kind", choices=["bpe", "gpt", "chat", "lookup"])
    parser.add_argument("--steps", type=int, default=None, help="training steps (gpt, lookup)")
    parser.add_argument("--out", default=None, help="where to write it (default: the shipped file's path)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a tiny model: one thread is about as fast, and leaves the other cores free
    if args.kind == "bpe":
        from .tokenizer import BPE_FILE, save_bpe, train_docs_bpe

        print(save_bpe(train_docs_bpe(), args.out or BPE_FILE))
    elif args.kind == "gpt":
        from .pretraining import CHECKPOINT, CHECKPOINT_STEPS, save_checkpoint

        state = save_checkpoint(args.out or CHECKPOINT, steps=args.steps or CHECKPOINT_STEPS)
        print(state["metrics"], state["few_shot"], sep="\n")
    elif args.kind == "lookup":
        from .lookup import LOOKUP_CHECKPOINT, LOOKUP_STEPS, save_lookup_checkpoint

        state = save_lookup_checkpoint(args.out or LOOKUP_CHECKPOINT, steps=args.steps or LOOKUP_STEPS)
        print(state["metrics"], state["few_shot"], sep="\n")
    else:
        from .chat import CHAT_RESULTS, chat_experiment

        runs = chat_experiment(path=args.out or CHAT_RESULTS)["runs"]
        print({init: [run["exact_match"] for run in seeds] for init, seeds in runs.items()})


if __name__ == "__main__":
    main()
