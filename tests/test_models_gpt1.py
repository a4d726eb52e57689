"""GPT-1 -> Decoder: logits match Hugging Face's ``OpenAIGPTLMHeadModel``."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import Decoder, from_hf
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")


def gpt1(**kw):
    config = transformers.OpenAIGPTConfig(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, **kw)
    torch.manual_seed(0)
    hf = transformers.OpenAIGPTLMHeadModel(config).eval()
    with torch.no_grad():  # HF's init leaves norms at identity and logits near zero: move every weight
        for p in hf.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return hf


def prompt(b=2, t=9):
    return torch.randint(0, 100, (b, t), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("options", [dict(), dict(afn="relu"), dict(tie_word_embeddings=False)],
                         ids=["gelu", "relu", "untied"])
def test_logits_match_hugging_face(options):
    hf = gpt1(**options)
    model = from_hf(hf)
    assert isinstance(model, Decoder)
    ids = prompt()
    with torch.no_grad():
        expected = hf(ids).logits
        diff = (model(ids) - expected).abs().max().item()
    assert expected.std() > 0.5, "logits this flat would hide a wrong weight"
    assert diff <= 1e-4, f"max |ours - HF| = {diff:.2e}"


def test_padding_mask_matches_hugging_face():
    hf = gpt1()
    model = from_hf(hf)
    ids = prompt(b=3)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 6:] = False  # right padding
    mask[2, 3:] = False
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask.long()).logits
        ours = model(ids, attn_mask=mask[:, None, None, :])
    diff = (ours - expected)[mask].abs().max().item()
    assert diff <= 1e-4, f"max |ours - HF| over real tokens = {diff:.2e}"


def test_the_converted_model_is_post_norm_without_a_final_norm():
    model = from_hf(gpt1())
    assert model.final_norm is None
    assert not any(block.norm_first for block in model.blocks)


def test_unsupported_activation_raises():
    with pytest.raises(ValueError, match="afn='silu'"):
        from_hf(gpt1(afn="silu"))
