"""The chapter's from-scratch models, trained ahead of time so that the page only loads them.

* ``save_translator`` / ``load_translator``: the English -> French/Korean number translator of
  ``from_scratch.train_translation``, its float16 weights, training history and the metrics of
  its training run (``python -m course_lib.recipes.seq2seq translator``). Loading decodes the
  held-out numbers again, so the exact-match rates and the decoding times the page shows are
  those of the loaded weights, measured on the reader's machine.
* ``save_text_to_text`` / ``load_text_to_text``: the summarization + question-answering run of
  ``from_scratch.train_text_to_text``, its scores, outputs and losses as JSON
  (``python -m course_lib.recipes.seq2seq text-to-text``).
"""
from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

import torch

from ...models import EncoderDecoder, EncoderDecoderConfig
from ...train import History
from .from_scratch import decode_translation, train_text_to_text, train_translation, translation_data

_CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
TRANSLATOR = _CHECKPOINT_DIR / "seq2seq_translator.pt"
TEXT_TO_TEXT = _CHECKPOINT_DIR / "seq2seq_text_to_text.json"
_TRAINING_METRICS = ("num_beams", "predictions_before", "train_seconds", "num_parameters")


def save_translator(path: str | Path | None = None, progress: bool = True, **options) -> dict:
    """``train_translation(**options)`` (its defaults: seed 0, 400 steps) and save the weights in
    float16, the vocabulary, the history and the training metrics."""
    model, history, metrics = train_translation(progress=progress, **options)
    vocab = translation_data()[0].vocab
    state = {"model": {k: v.half() for k, v in model.state_dict().items()}, "words": vocab.itos,
             "config": asdict(model.config), "history": asdict(history),
             "metrics": {k: metrics[k] for k in _TRAINING_METRICS}, "options": options,
             "python": platform.python_version()}
    torch.save(state, path or TRANSLATOR)
    return state


def load_translator(path: str | Path | None = None) -> tuple[EncoderDecoder, History, dict]:
    """``(model, history, metrics)`` as ``train_translation`` returns them, from the saved run;
    the decoding metrics (``greedy``, ``beam``, ``beam_stop_early``, their predictions and
    ``decode_seconds``) are measured again on the loaded float32 model."""
    saved = torch.load(path or TRANSLATOR, map_location="cpu", weights_only=True)
    _, val_data = translation_data()
    if list(saved["words"]) != val_data.vocab.itos:
        raise ValueError("the saved translator has another character vocabulary than this data")
    model = EncoderDecoder(EncoderDecoderConfig(**saved["config"]))
    model.load_state_dict({k: v.float() for k, v in saved["model"].items()})
    model.eval()
    metrics = {**saved["metrics"], **decode_translation(model, val_data, saved["metrics"]["num_beams"])}
    return model, History(**saved["history"]), metrics


def save_text_to_text(path: str | Path | None = None, progress: bool = True, **options) -> dict:
    """``train_text_to_text(**options)`` (its defaults: seed 0, 500 steps), saved as JSON: its
    ``metrics`` and ``history``."""
    _, history, metrics = train_text_to_text(progress=progress, **options)
    results = {"metrics": metrics, "history": asdict(history), "options": options,
               "python": platform.python_version()}
    Path(path or TEXT_TO_TEXT).write_text(json.dumps(results))
    return results


def load_text_to_text(path: str | Path | None = None) -> tuple[History, dict]:
    """``(history, metrics)`` of the saved text-to-text run."""
    saved = json.loads(Path(path or TEXT_TO_TEXT).read_text())
    return History(**saved["history"]), saved["metrics"]
