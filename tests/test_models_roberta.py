"""RoBERTa: parity with Hugging Face, position ids that skip padding, refused options."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import Encoder, EncoderConfig, EncoderForMaskedLM, from_hf
from course_lib.models.encoder import positions_after_padding
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

PAD = 1  # RoBERTa's padding id; position ids start at PAD + 1
HF_CONFIG = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=16 + PAD + 1, type_vocab_size=1, pad_token_id=PAD)


def spread(hf, std=0.3):
    """Redraw every weight N(0, std), seeded: at HF's init (0.02) some terms are too small for a
    wrong implementation to move the logits by 1e-4. Tied weights stay tied (one tensor)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in hf.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * std)
    return hf


def batch(device):
    """Three rows: full, right-padded and left-padded (pads must not shift real positions)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 100, (3, 12), generator=g)
    ids[1, 8:] = PAD
    ids[2, :5] = PAD
    return ids.to(device)


@pytest.mark.parametrize("hf_name", ["RobertaForMaskedLM", "RobertaModel"])
def test_matches_hugging_face_roberta_with_padding(device, hf_name):
    # gelu_new in the blocks: the MLM head must still use exact GELU, as RoBERTa's does.
    hf_config = transformers.RobertaConfig(**HF_CONFIG, hidden_act="gelu_new")
    hf = spread(getattr(transformers, hf_name)(hf_config)).eval().to(device)
    model = from_hf(hf).to(device)
    assert isinstance(model, EncoderForMaskedLM if hf_name == "RobertaForMaskedLM" else Encoder)
    ids = batch(device)
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=(ids != PAD).long())
        expected = out.logits if hf_name == "RobertaForMaskedLM" else out.last_hidden_state
        got = model(ids)
    assert got.shape == expected.shape
    real = ids != PAD  # padded positions' outputs are never read
    diff = (got - expected)[real].abs().max().item()
    assert diff <= 1e-4, f"{hf_name}: max |ours - HF| = {diff:.2e}"


def test_position_ids_count_real_tokens_after_the_padding_id():
    ids = torch.tensor([[7, 8, 9, PAD, PAD], [PAD, PAD, 7, 8, 9]])
    positions = positions_after_padding(ids, PAD)
    assert positions.tolist() == [[2, 3, 4, 1, 1], [1, 1, 2, 3, 4]]
    hf_positions = transformers.models.roberta.modeling_roberta.RobertaEmbeddings.create_position_ids_from_input_ids(
        ids, PAD)
    assert torch.equal(positions, hf_positions)


def test_left_padding_does_not_change_real_tokens():
    config = EncoderConfig(vocab_size=50, embed_dim=16, num_layers=1, num_heads=2, hidden_dim=32, max_len=12,
                           pad_id=PAD, positions="after_padding", num_segments=1)
    model = Encoder(config).eval()
    ids = torch.randint(3, 50, (1, 6))
    padded = torch.cat([torch.full((1, 3), PAD), ids], dim=1)
    with torch.no_grad():
        diff = (model(padded)[:, 3:] - model(ids)).abs().max().item()
    assert diff <= 1e-5, f"left padding moved the real tokens' states by {diff:.2e}"


def test_unsupported_roberta_options_raise_value_error():
    with pytest.raises(ValueError, match="hidden_act"):
        from_hf(transformers.RobertaForMaskedLM(transformers.RobertaConfig(**HF_CONFIG, hidden_act="silu")))
    with pytest.raises(ValueError, match="decoder"):
        from_hf(transformers.RobertaModel(transformers.RobertaConfig(**HF_CONFIG, is_decoder=True)))
    with pytest.raises(ValueError, match="positions"):
        EncoderConfig(positions="rotary")
