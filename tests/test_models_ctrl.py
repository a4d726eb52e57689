"""CTRL -> Decoder: logits and greedy generation match Hugging Face's ``CTRLLMHeadModel``."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import Decoder, from_hf, with_control_codes
from course_lib.nn import SinusoidalPositionalEncoding
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")


def ctrl(**kw):
    config = transformers.CTRLConfig(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64, dff=64,
                                     pad_token_id=0, **kw)
    torch.manual_seed(0)
    hf = transformers.CTRLLMHeadModel(config).eval()
    with torch.no_grad():  # HF's init leaves norms at identity and the head's bias at zero: move every weight
        for p in hf.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return hf


def prompt(b=2, t=9, code=7):
    ids = torch.randint(10, 100, (b, t), generator=torch.Generator().manual_seed(1))
    return with_control_codes(ids, [code])  # CTRL's control code is simply the first token


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_logits_match_hugging_face(tied):
    hf = ctrl(tie_word_embeddings=tied)
    model = from_hf(hf)
    assert isinstance(model, Decoder)
    ids = prompt()
    with torch.no_grad():
        expected = hf(ids).logits
        diff = (model(ids) - expected).abs().max().item()
    assert expected.std() > 0.5, "logits this flat would hide a wrong weight"
    assert diff <= 1e-4, f"max |ours - HF| = {diff:.2e}"


def test_padding_mask_matches_hugging_face():
    hf = ctrl()
    model = from_hf(hf)
    ids = prompt(b=3)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 6:] = False  # right padding
    mask[2, 4:] = False
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask.long()).logits
        ours = model(ids, attn_mask=mask[:, None, None, :])
    diff = (ours - expected)[mask].abs().max().item()
    assert diff <= 1e-4, f"max |ours - HF| over real tokens = {diff:.2e}"


def test_greedy_generation_matches_hugging_face():
    hf = ctrl()
    model = from_hf(hf)
    ids = prompt(t=4)
    expected = hf.generate(ids, do_sample=False, max_new_tokens=12, pad_token_id=0, eos_token_id=None)
    assert model.generate(ids, max_new_tokens=12, temperature=0).tolist() == expected.tolist()


def test_sinusoids_are_laid_out_as_sines_then_cosines():
    hf = ctrl()
    ours = SinusoidalPositionalEncoding(32, max_len=64, interleave=False).pe
    torch.testing.assert_close(ours, hf.transformer.pos_encoding, atol=1e-5, rtol=0)
    interleaved = SinusoidalPositionalEncoding(32, max_len=64).pe
    assert (interleaved - hf.transformer.pos_encoding).abs().max() > 0.5, "the paper's layout differs from CTRL's"


def test_the_converted_model_has_ctrls_shape():
    model = from_hf(ctrl())
    assert model.token_embed.scale and model.head_bias is not None and model.final_norm is not None
    assert all(block.norm_first and block.ffn.activation == "relu" for block in model.blocks)


def test_unsupported_option_raises():
    with pytest.raises(ValueError, match="layer_norm_epsilon"):
        from_hf(ctrl(layer_norm_epsilon=1e-5))
