"""A small GPT trained FOR the few-shot lookup, the control to the chapter's mixed pre-training.

Shape legend: b batch, t positions (``LOOKUP_BLOCK_SIZE``), v vocabulary (the chapter's BPE).

The chapter's GPT saw the few-shot documents (``icl.py``) as 40% of a general pre-training and
never learned to look a word up in the prompt. This one is trained on those documents, with a
small share of docstrings (``LOOKUP_DOC_SHARE``), and is scored by the same ``shots_curve``.

* ``lookup_config``        2 blocks of width 64 with rotary positions (relative offsets, such as
                           "the token before", are what the lookup needs);
* ``train_lookup_gpt``     train it from scratch, return ``(model, history, metrics)``;
* ``save_lookup_checkpoint`` / ``load_lookup_checkpoint``: the run the chapter ships
  (``python -m course_lib.recipes.decoder lookup`` rebuilds it).
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ...data.text import WindowDataset
from ...models import Decoder, DecoderConfig
from ...tokenizers import ByteBPETokenizer
from ...train import History, train
from .icl import few_shot_answers, few_shot_documents, few_shot_prompts, shots_curve
from .pretraining import MixedWindows, docs_ids, load_checkpoint, next_token_loss, train_config
from .tokenizer import CHECKPOINT_DIR, load_bpe

LOOKUP_BLOCK_SIZE = 64  # tokens: about 16 lines of "- word label"
LOOKUP_DOC_SHARE = 0.1  # of the training windows come from the docstrings
LOOKUP_CHECKPOINT = CHECKPOINT_DIR / "decoder_lookup.pt"
LOOKUP_STEPS = 4000


def lookup_config(vocab_size: int) -> DecoderConfig:
    """2 blocks of width 64, 4 heads, rotary positions (about 0.17 M parameters, most in the embedding)."""
    return DecoderConfig(vocab_size=vocab_size, embed_dim=64, num_layers=2, num_heads=4, hidden_dim=256,
                         max_len=LOOKUP_BLOCK_SIZE, positions="rope", dropout=0.0)


def new_lookup_gpt(vocab_size: int, seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    return Decoder(lookup_config(vocab_size))


def train_lookup_gpt(steps: int = LOOKUP_STEPS, seed: int = 0, batch_size: int = 32, lr: float = 6e-3,
                     doc_share: float = LOOKUP_DOC_SHARE, tokenizer: ByteBPETokenizer | None = None,
                     evaluations: int = 8, progress: bool = False) -> tuple[Decoder, History, dict]:
    """Train the small GPT by next-token prediction on few-shot documents (and ``doc_share`` docstrings).

    Validation: few-shot documents of maps never trained on (another seed). ``metrics`` holds the
    training ``seconds``.
    """
    tokenizer = tokenizer or load_bpe()
    few_shot = torch.tensor(tokenizer.encode_ordinary(few_shot_documents(5_000, seed)))
    val_ids = torch.tensor(tokenizer.encode_ordinary(few_shot_documents(200, seed + 1)))
    # MixedWindows draws a `share` from its second stream: here the docstrings.
    train_data = MixedWindows(few_shot, docs_ids("train"), steps * batch_size, LOOKUP_BLOCK_SIZE, doc_share, seed)
    model = new_lookup_gpt(tokenizer.vocab_size, seed)
    start = time.perf_counter()
    config = train_config(steps, seed, lr, batch_size, progress, evaluations, eval_batches=4)
    history = train(model, train_data, WindowDataset(val_ids, LOOKUP_BLOCK_SIZE), config, loss_fn=next_token_loss)
    return model.eval(), history, {"seconds": time.perf_counter() - start}


def accuracy_by_seen(model: Decoder, tokenizer: ByteBPETokenizer, shots: int, num_prompts: int = 400,
                     seed: int = 0, labels=None) -> dict[str, float]:
    """Accuracy at ``shots`` on new maps, split by whether the prompt shows the query's word:
    ``{"seen": ..., "unseen": ...}`` (a reader that looks the word up is right when it is shown,
    and can only guess when it is not)."""
    prompts = few_shot_prompts(shots, num_prompts, seed, *(() if labels is None else (labels,)))
    answers = few_shot_answers(model, tokenizer, prompts)
    right = np.array([a == p["answer"] for a, p in zip(answers, prompts)])
    seen = np.array([p["seen"] for p in prompts])
    return {"seen": float(right[seen].mean()), "unseen": float(right[~seen].mean())}


def save_lookup_checkpoint(path: str | Path = LOOKUP_CHECKPOINT, steps: int = LOOKUP_STEPS, seed: int = 0,
                           progress: bool = True) -> dict:
    """Train for ``steps`` and save float16 weights, the loss history, the seconds and the few-shot curve."""
    tokenizer = load_bpe()
    start = time.process_time()
    model, history, metrics = train_lookup_gpt(steps, seed, tokenizer=tokenizer, progress=progress)
    metrics["cpu_seconds"] = time.process_time() - start
    state = {"model": {k: v.half() for k, v in model.state_dict().items()}, "history": asdict(history),
             "metrics": metrics, "few_shot": shots_curve(model, tokenizer), "steps": steps, "seed": seed,
             "doc_share": LOOKUP_DOC_SHARE}
    torch.save(state, Path(path))
    return state


def load_lookup_checkpoint(path: str | Path = LOOKUP_CHECKPOINT) -> tuple[Decoder, dict]:
    """``(model, saved)``: the shipped lookup GPT in float32, in eval mode, and what was saved with it."""
    return load_checkpoint(path, build=new_lookup_gpt)
