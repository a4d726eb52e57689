"""What every converter shares: renaming by rules, and refusing what it cannot convert.

A converter takes a ``transformers`` model and returns ``(config_kwargs, state_dict)`` for
the matching ``course_lib.models`` class, whose ``from_hf`` builds the config dataclass and
loads the state dict with ``strict=True``, so a forgotten or misnamed weight fails loudly.
Renaming rules are regular expressions tried in order; a key that no rule matches raises
``ValueError`` instead of being dropped in silence.
"""
from __future__ import annotations

import re

from torch import Tensor

SKIP = None  # a rule's target that drops the key (tied copies, buffers)


def rename(state: dict[str, Tensor], rules: list[tuple[str, str | None]], what: str) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, target in rules:
            if re.fullmatch(pattern, key):
                if target is not SKIP:
                    out[re.sub(pattern, target, key)] = value.detach().clone()
                break
        else:
            raise ValueError(f"{what}: no conversion rule for checkpoint key {key!r} of shape {tuple(value.shape)}")
    return out


def strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_head_dim(c) -> None:
    head_dim, given = c.hidden_size // c.num_attention_heads, getattr(c, "head_dim", None)
    require(given in (None, head_dim), f"head_dim must be hidden_size // num_heads = {head_dim}, got {given}")


# Hugging Face's activation names -> course_lib.nn's.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
