"""``python -m course_lib.recipes.multimodal vq|t2i|captioner|flava|all``: rebuild the chapter's
shipped checkpoints in ``recipes/checkpoints/multimodal_*.pt`` (``t2i`` and ``flava`` read the
shipped VQ-VAE, so build ``vq`` first). ``all`` builds them in that order."""
from __future__ import annotations

import argparse
import time

import torch

from . import checkpoints
from .captioning import caption_metrics, train_captioner
from .clip import train_clip
from .common import digits
from .flava import FLAVA_STEPS, flava_data, flava_metrics, train_flava
from .vq import T2I_STEPS, VQ_STEPS, load_vq_vae, save_text_to_image, save_vq_vae

CAPTIONER_STEPS = 1000


def save_captioner(steps: int = CAPTIONER_STEPS) -> dict:
    model, history, _ = train_captioner(steps)
    checkpoints.round_to_half(model.cpu())
    metrics = {"after": caption_metrics(model, digits(0)[1]), "steps": steps}  # as shipped
    checkpoints.save("captioner", model, history, metrics, config=model.config)
    return metrics


def save_flava(steps: int = FLAVA_STEPS) -> dict:
    model, history, metrics = train_flava(load_vq_vae()[0], steps)
    checkpoints.round_to_half(model.cpu())
    metrics["after"] = flava_metrics(model, flava_data(digits(0)[1], load_vq_vae()[0]))  # as shipped
    # CLIP for as many steps, the same batch size and learning-rate schedule: the contrastive loss alone.
    _, _, clip_metrics = train_clip(steps=steps, lr=2e-3)
    metrics["clip_same_steps"] = {"zero_shot_accuracy": clip_metrics["zero_shot_accuracy"],
                                  "recall": clip_metrics["recall"]}
    checkpoints.save("flava", model, history, metrics, config=model.flava.config,
                     num_image_codes=model.mim_head.out_features)
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.recipes.multimodal",
                                     description="Train one of the multimodal chapter's models ahead and save it.")
    parser.add_argument("kind", choices=["vq", "t2i", "captioner", "flava", "all"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    jobs = {"vq": lambda: save_vq_vae(steps=VQ_STEPS),
            "t2i": lambda: {kind: save_text_to_image(kind, steps=T2I_STEPS) for kind in ("kmeans", "vq")},
            "captioner": save_captioner, "flava": save_flava}
    for kind in (["vq", "t2i", "captioner", "flava"] if args.kind == "all" else [args.kind]):
        start = time.perf_counter()
        metrics = jobs[kind]()
        print(f"{kind}: {time.perf_counter() - start:.0f} s", metrics, flush=True)


if __name__ == "__main__":
    main()
