"""Pre-training the chapter's GPT on BPE tokens of real text, and the checkpoint trained ahead.

Shape legend: b batch, t positions (``block_size``), v vocabulary (BPE tokens, then specials).

The text is the standard-library docstrings (``corpus_text``), BPE-encoded with the chapter's
tokenizer, with a share (``FEW_SHOT_SHARE``) of few-shot documents (``icl.py``) mixed in: every
training window is drawn at random from one of the two token streams. Validation is on the
docstrings' own validation documents only, so that its loss compares with baselines counted on
the same text.

* ``train_gpt``         pre-train from scratch and return ``(model, history, metrics)``;
* ``lm_metrics``        validation loss per token and per byte, perplexity, and the unigram and
                        bigram baselines on the same BPE ids;
* ``save_checkpoint``   / ``load_checkpoint``: the run of ``CHECKPOINT_STEPS`` steps that the
                        chapter ships (``python -m course_lib.recipes.decoder gpt`` rebuilds it).
"""
from __future__ import annotations

import functools
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ...constants import IGNORE_INDEX
from ...data import corpus_text
from ...data.text import WindowDataset, bigram_cross_entropy, unigram_cross_entropy
from ...models import Decoder, DecoderConfig
from ...tokenizers import ByteBPETokenizer
from ...train import History, TrainConfig, evaluate, train
from .icl import few_shot_documents, shots_curve
from .tokenizer import CHECKPOINT_DIR, load_bpe

BLOCK_SIZE = 128  # tokens of context, about 320 characters
FEW_SHOT_SHARE = 0.4  # of the pre-training windows
CHECKPOINT = CHECKPOINT_DIR / "decoder_gpt.pt"
CHECKPOINT_STEPS = 2500


def gpt_config(vocab_size: int, max_len: int = BLOCK_SIZE) -> DecoderConfig:
    """The chapter's GPT: GPT-2's architecture, 3 blocks of width 96 (about 0.45 M parameters)."""
    return DecoderConfig(vocab_size=vocab_size, embed_dim=96, num_layers=3, num_heads=4, hidden_dim=384,
                         max_len=max_len, dropout=0.0)


def next_token_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy of ``model(input_ids) (b t v)`` against ``labels (b t)``; ``IGNORE_INDEX`` marks no target."""
    logits = model(batch["input_ids"])
    return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)


def train_config(steps: int, seed: int, lr: float, batch_size: int, progress: bool, evaluations: int = 6,
                 eval_batches: int = 8) -> TrainConfig:
    """``evaluations`` spread over the run (the last one after the last step), each on the same
    ``eval_batches`` validation batches."""
    # The CPU on purpose: the model is tiny, and the numbers come out the same on every machine.
    return TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10),
                       eval_every=max(1, steps // evaluations), eval_batches=eval_batches, seed=seed,
                       progress=progress, device="cpu")


@functools.lru_cache(maxsize=4)
def docs_ids(split: str, path: str | None = None) -> Tensor:
    """The BPE ids of one split of the docstrings, ``(n,)`` (cached: encoding takes about a second)."""
    tokenizer = load_bpe(path) if path else load_bpe()
    return torch.tensor(tokenizer.encode_ordinary(corpus_text(split)))


class MixedWindows(Dataset):
    """``num_windows`` random windows of ``block_size + 1`` tokens, a ``share`` of them from
    ``extra_ids`` and the rest from ``ids``; item: ``input_ids (t,)`` and ``labels (t,)``."""

    def __init__(self, ids: Tensor, extra_ids: Tensor, num_windows: int, block_size: int, share: float,
                 seed: int = 0):
        rng = np.random.default_rng([seed, 16])
        self.streams, self.block_size = (ids, extra_ids), block_size
        self.source = (rng.random(num_windows) < share).astype(int)
        self.starts = [int(rng.integers(0, len(self.streams[s]) - block_size - 1)) for s in self.source]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        start = self.starts[index]
        window = self.streams[self.source[index]][start : start + self.block_size + 1]
        return {"input_ids": window[:-1], "labels": window[1:]}


def new_gpt(vocab_size: int, seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    return Decoder(gpt_config(vocab_size))  # GPT-2's initialisation, from the constructor


def train_gpt(steps: int = 300, seed: int = 0, batch_size: int = 32, lr: float = 3e-3,
              few_shot_share: float = FEW_SHOT_SHARE, tokenizer: ByteBPETokenizer | None = None,
              evaluations: int = 6, eval_batches: int = 8, progress: bool = False) -> tuple[Decoder, History, dict]:
    """Pre-train the chapter's GPT from scratch by next-token prediction on BPE ids.

    Returns ``(model, history, metrics)``: ``metrics`` holds the training ``seconds`` and the
    validation loss on ``eval_batches`` fixed batches of windows (``val_loss``, nats per token),
    measured ``evaluations`` times; ``lm_metrics`` scores the whole validation text.
    """
    tokenizer = tokenizer or load_bpe()
    few_shot = torch.tensor(tokenizer.encode_ordinary(few_shot_documents(5_000, seed)))
    train_data = MixedWindows(docs_ids("train"), few_shot, steps * batch_size, BLOCK_SIZE, few_shot_share, seed)
    val_data = WindowDataset(docs_ids("val"), BLOCK_SIZE)
    model = new_gpt(tokenizer.vocab_size, seed)
    start = time.perf_counter()
    config = train_config(steps, seed, lr, batch_size, progress, evaluations, eval_batches)
    history = train(model, train_data, val_data, config, loss_fn=next_token_loss)
    return model.eval(), history, {"val_loss": history.val_loss[-1], "seconds": time.perf_counter() - start}


def lm_metrics(model: Decoder, tokenizer: ByteBPETokenizer) -> dict[str, float]:
    """Validation loss of ``model`` and of the two count baselines, on the same BPE ids.

    ``*_per_token`` are nats per token; ``*_per_byte`` divide by the bytes a token covers on
    average (``bytes_per_token``), which makes them comparable with any tokenizer's, characters
    included. The model reads non-overlapping windows of ``BLOCK_SIZE`` tokens.
    """
    train_ids, val_ids = docs_ids("train"), docs_ids("val")
    byte_counts = torch.tensor([len(tokenizer.vocab[i]) for i in range(len(tokenizer.vocab))])
    per_token = {
        "model": evaluate(model, WindowDataset(val_ids, BLOCK_SIZE), 64, next_token_loss, max_batches=None),
        "unigram": unigram_cross_entropy(train_ids, val_ids, tokenizer.vocab_size),
        "bigram": bigram_cross_entropy(train_ids, val_ids, tokenizer.vocab_size),
        "uniform": math.log(tokenizer.vocab_size),
    }
    bytes_per_token = float(byte_counts[val_ids].float().mean())
    metrics = {"bytes_per_token": bytes_per_token, "val_tokens": int(val_ids.numel())}
    for name, loss in per_token.items():
        metrics[f"{name}_per_token"] = loss
        metrics[f"{name}_per_byte"] = loss / bytes_per_token
        metrics[f"{name}_perplexity"] = math.exp(loss)
    return metrics


def save_checkpoint(path: str | Path = CHECKPOINT, steps: int = CHECKPOINT_STEPS, seed: int = 0, lr: float = 3e-3,
                    progress: bool = True) -> dict:
    """Pre-train for ``steps`` and save float16 weights (half the bytes; the page computes in
    float32), the loss history, the metrics and the few-shot curve."""
    tokenizer = load_bpe()
    start = time.process_time()
    model, history, metrics = train_gpt(steps, seed, lr=lr, tokenizer=tokenizer, progress=progress)
    metrics["cpu_seconds"] = time.process_time() - start
    metrics |= lm_metrics(model, tokenizer)
    state = {"model": {k: v.half() for k, v in model.state_dict().items()}, "history": asdict(history),
             "metrics": metrics, "few_shot": shots_curve(model, tokenizer), "steps": steps, "lr": lr, "seed": seed,
             "few_shot_share": FEW_SHOT_SHARE, "python": platform.python_version()}
    torch.save(state, Path(path))
    return state


def load_checkpoint(path: str | Path = CHECKPOINT, build=None) -> tuple[Decoder, dict]:
    """``(model, saved)``: a shipped GPT in float32, in eval mode, and everything saved with it.
    ``build(vocab_size)`` makes the empty model (default: ``new_gpt``)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = (build or new_gpt)(saved["model"]["token_embed.weight"].shape[0])
    model.load_state_dict({k: v.float() for k, v in saved["model"].items()})
    return model.eval(), saved
