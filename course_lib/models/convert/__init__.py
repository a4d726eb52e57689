"""Hugging Face models in, ``course_lib`` models out: the only package that knows HF names.

One converter module per family. Each has ``convert(hf_model) -> (config_kwargs,
state_dict)`` for the matching ``course_lib.models`` class; that class's ``from_hf`` builds
its config dataclass and loads the state dict with ``strict=True``. :data:`FAMILIES` says
which HF class goes to which converter and which ``course_lib`` class, and
:func:`from_hf` dispatches on it.

Adding a family: write ``convert/<family>.py`` (rules in :mod:`._rules`), add its HF classes
to :data:`FAMILIES`, express what differs as options of the family's config (``DecoderConfig``,
``EncoderConfig``, ``EncoderDecoderConfig``), and add a parity test against HF.
"""
from __future__ import annotations

import importlib

from torch import Tensor, nn

from .bert import bert_config, bert_state_dict, load_bert_checkpoint

# HF class name -> (converter module, course_lib.models module, course_lib class)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "GPT2LMHeadModel": ("gpt2", "decoder", "Decoder"),
    "LlamaForCausalLM": ("llama", "decoder", "Decoder"),
    "BertModel": ("bert", "encoder", "Encoder"),
    "BertForMaskedLM": ("bert", "encoder", "EncoderForMaskedLM"),
    "BertForSequenceClassification": ("bert", "encoder", "EncoderForSequenceClassification"),
    "BertForTokenClassification": ("bert", "encoder", "EncoderForTokenClassification"),
    "BartForConditionalGeneration": ("bart", "seq2seq", "EncoderDecoder"),
    "ViTModel": ("vit", "vit", "VisionTransformer"),
    "ViTForImageClassification": ("vit", "vit", "VisionTransformer"),
    "CLIPModel": ("clip", "clip", "CLIP"),
    # decoder-only: GPT-1, CTRL, OPT
    "OpenAIGPTLMHeadModel": ("gpt1", "decoder", "Decoder"),
    "CTRLLMHeadModel": ("ctrl", "decoder", "Decoder"),
    "OPTForCausalLM": ("opt", "decoder", "Decoder"),
    # encoder: RoBERTa, ELECTRA, XLNet
    "RobertaModel": ("roberta", "encoder", "Encoder"),
    "RobertaForMaskedLM": ("roberta", "encoder", "EncoderForMaskedLM"),
    "ElectraForPreTraining": ("electra", "encoder", "EncoderForReplacedTokenDetection"),
    "ElectraForMaskedLM": ("electra", "encoder", "EncoderForMaskedLM"),
    "XLNetLMHeadModel": ("xlnet", "xlnet", "XLNet"),
    # encoder-decoder: T5, mT5, Pegasus
    "T5ForConditionalGeneration": ("t5", "seq2seq", "EncoderDecoder"),
    "MT5ForConditionalGeneration": ("t5", "seq2seq", "EncoderDecoder"),
    "PegasusForConditionalGeneration": ("pegasus", "seq2seq", "EncoderDecoder"),
    # multimodal: FLAVA
    "FlavaModel": ("flava", "flava", "FLAVA"),
}


def _supported(target: str | None = None) -> str:
    names = sorted(n for n, (_, _, cls) in FAMILIES.items() if target in (None, cls))
    return ", ".join(names)


def state_from_hf(hf_model, target: str) -> tuple[dict, dict[str, Tensor]]:
    """``(config kwargs, state dict)`` of ``course_lib.models.<target>`` for ``hf_model``.

    Raises ``ValueError`` naming the supported HF classes when ``hf_model`` is not one that
    converts to ``target``.
    """
    name = type(hf_model).__name__
    entry = FAMILIES.get(name)
    if entry is None or entry[2] != target:
        raise ValueError(f"{target}.from_hf does not convert {name}; it converts: {_supported(target)}")
    return importlib.import_module(f"{__name__}.{entry[0]}").convert(hf_model)


def from_hf(hf_model) -> nn.Module:
    """The ``course_lib`` model matching a ``transformers`` model (built from a config, with
    random or real weights), in eval mode, with the same weights.

    Raises ``ValueError`` for an HF class it does not support (the message lists those it
    does) and for a config option the ``course_lib`` model does not implement.
    """
    name = type(hf_model).__name__
    if name not in FAMILIES:
        raise ValueError(f"course_lib.models.from_hf does not support {name}; supported: {_supported()}")
    _, module, cls = FAMILIES[name]
    return getattr(importlib.import_module(f"course_lib.models.{module}"), cls).from_hf(hf_model)


__all__ = ["FAMILIES", "from_hf", "state_from_hf", "bert_config", "bert_state_dict", "load_bert_checkpoint"]
