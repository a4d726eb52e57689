"""``course_lib.models.from_hf``: one entry point that picks the family from the HF class.

Each family's parity with Hugging Face is tested in its own ``test_models_<family>.py``;
this file tests the dispatch itself.
"""
from __future__ import annotations

import pytest
import torch
import transformers

from course_lib.models import Decoder, from_hf
from course_lib.models.convert import FAMILIES

from .models_helpers import one_thread  # noqa: F401


def test_every_listed_class_exists_in_transformers():
    missing = [name for name in FAMILIES if not hasattr(transformers, name)]
    assert not missing


def test_every_listed_course_lib_class_exists():
    import importlib

    for hf_name, (converter, module, cls) in FAMILIES.items():
        assert hasattr(importlib.import_module(f"course_lib.models.{module}"), cls), hf_name
        assert hasattr(importlib.import_module(f"course_lib.models.convert.{converter}"), "convert"), hf_name


def test_dispatch_picks_the_family_and_matches():
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=4, vocab_size=64, n_positions=16, bos_token_id=0, eos_token_id=0)).eval()
    ours = from_hf(hf)
    assert isinstance(ours, Decoder) and not ours.training
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() < 1e-4


def test_an_unsupported_class_gets_a_list_of_the_supported_ones():
    with pytest.raises(ValueError, match="does not support Linear; supported: .*GPT2LMHeadModel"):
        from_hf(torch.nn.Linear(2, 2))


def test_a_family_class_refuses_another_familys_model():
    hf = transformers.BertModel(transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    with pytest.raises(ValueError, match="Decoder.from_hf does not convert BertModel; it converts: .*GPT2LMHeadModel"):
        Decoder.from_hf(hf)
