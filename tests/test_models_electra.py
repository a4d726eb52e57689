"""ELECTRA: discriminator and generator parity with Hugging Face, with narrow embeddings."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import EncoderForMaskedLM, from_hf
from course_lib.models.encoder import EncoderForReplacedTokenDetection
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

# embedding_size != hidden_size: the embeddings are projected up before the blocks.
HF_CONFIG = dict(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=24, type_vocab_size=2, pad_token_id=0)


def spread(hf, std=0.3):
    """Redraw every weight N(0, std), seeded: at HF's init (0.02) some terms are too small for a
    wrong implementation to move the logits by 1e-4. Tied weights stay tied (one tensor)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in hf.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * std)
    return hf


def batch(device):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (2, 12), generator=g)
    ids[1, 7:] = 0
    segments = torch.zeros_like(ids)
    segments[:, 6:] = 1
    return ids.to(device), segments.to(device)


@pytest.mark.parametrize("hf_name, ours, shape", [
    ("ElectraForPreTraining", EncoderForReplacedTokenDetection, (2, 12)),
    ("ElectraForMaskedLM", EncoderForMaskedLM, (2, 12, 100)),
])
def test_matches_hugging_face_electra(device, hf_name, ours, shape):
    # relu in the blocks: the generator's head keeps GELU, the discriminator's follows hidden_act.
    hf = spread(getattr(transformers, hf_name)(transformers.ElectraConfig(**HF_CONFIG, hidden_act="relu")))
    hf = hf.eval().to(device)
    model = from_hf(hf).to(device)
    assert isinstance(model, ours)
    assert model.encoder.embed_proj.weight.shape == (32, 16)
    ids, segments = batch(device)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=(ids != 0).long(), token_type_ids=segments).logits
        got = model(ids, segments)
    assert got.shape == expected.shape == shape
    diff = (got - expected)[ids != 0].abs().max().item()
    assert diff <= 1e-4, f"{hf_name}: max |ours - HF| = {diff:.2e}"


def test_discriminator_loss_ignores_padding():
    logits = torch.tensor([[3.0, -3.0, 50.0]])
    replaced = torch.tensor([[True, False, False]])
    keep = torch.tensor([[True, True, False]])  # the last logit is badly wrong, but it is padding
    loss = EncoderForReplacedTokenDetection.loss(logits, replaced, keep)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :2], replaced[:, :2].float())
    torch.testing.assert_close(loss, expected)
    assert EncoderForReplacedTokenDetection.loss(logits, replaced) > loss


def test_unsupported_electra_options_raise_value_error():
    with pytest.raises(ValueError, match="hidden_act"):
        from_hf(transformers.ElectraForPreTraining(transformers.ElectraConfig(**HF_CONFIG, hidden_act="silu")))
    untied = transformers.ElectraForMaskedLM(transformers.ElectraConfig(**HF_CONFIG, tie_word_embeddings=False))
    with pytest.raises(ValueError, match="tied"):
        from_hf(untied)
