"""The chapter's shipped checkpoints: float16 weights plus what the page plots, in
``course_lib/recipes/checkpoints/multimodal_<name>.pt``.

Weights are rounded to float16 *before* a recipe measures its model (``round_to_half``), so the
numbers a recipe reports are those of the weights it ships.
"""
from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ...train import History
from .common import CHECKPOINT_DIR


def checkpoint_path(name: str) -> Path:
    return CHECKPOINT_DIR / f"multimodal_{name}.pt"


def _half(state: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


@torch.no_grad()
def round_to_half(model: nn.Module) -> nn.Module:
    """Round every weight and buffer to float16 and back, in place: the model as it will ship."""
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in _half(model.state_dict()).items()})
    return model


def save(name: str, model: nn.Module, history: History | None, metrics: dict, path: str | Path | None = None,
         **extra) -> Path:
    path = Path(path or checkpoint_path(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": _half(model.cpu().state_dict()), "history": None if history is None else asdict(history),
                "metrics": metrics, "torch": torch.__version__, "machine": platform.machine(), **extra}, path)
    return path


def read(name: str, path: str | Path | None = None) -> dict:
    """What ``save`` wrote; ``"history"`` comes back as a ``History``."""
    saved = torch.load(Path(path or checkpoint_path(name)), map_location="cpu", weights_only=False)
    if saved["history"] is not None:
        saved["history"] = History(**saved["history"])
    return saved


def load_weights(model: nn.Module, saved: dict) -> nn.Module:
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["state"].items()})
    return model.eval()
