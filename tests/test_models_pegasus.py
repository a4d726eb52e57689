"""Pegasus as options of the encoder-decoder: parity with Hugging Face, its fixed sinusoids."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import EncoderDecoder, from_hf
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

PAD, VOCAB = 0, 100
SIZES = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=48,
             scale_embedding=True)


def pegasus(device, untie=False, **kw):
    torch.manual_seed(0)
    hf = transformers.PegasusForConditionalGeneration(transformers.PegasusConfig(**SIZES, **kw))
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "norm" in name:  # weights 1 and biases 0 would hide a norm loaded into the wrong place
                param.add_(0.2 * torch.randn_like(param))
        hf.final_logits_bias.normal_(std=0.5)
    if untie:
        hf.lm_head.weight = torch.nn.Parameter(0.05 * torch.randn(VOCAB, 32))
    return hf.eval().to(device)


def batch(device, b=2, s=9, t=6):
    g = torch.Generator().manual_seed(1)
    src = torch.randint(2, VOCAB, (b, s), generator=g)
    src[1, 5:] = PAD
    tgt = torch.randint(2, VOCAB, (b, t), generator=g)
    tgt[:, 0] = PAD  # Pegasus starts decoding with the pad token
    return src.to(device), tgt.to(device)


@pytest.mark.parametrize("untie", [False, True], ids=["tied", "untied"])
def test_logits_match_hugging_face(device, untie):
    hf = pegasus(device, untie=untie)
    model = from_hf(hf).to(device)
    assert model.config.tie_head != untie
    src, tgt = batch(device)
    with torch.no_grad():
        out = hf(input_ids=src, attention_mask=(src != PAD).long(), decoder_input_ids=tgt)
        encoder_diff = (model.encode(src) - out.encoder_last_hidden_state).abs().max().item()
        logits_diff = (model(src, tgt) - out.logits).abs().max().item()
    assert encoder_diff <= 1e-4 and logits_diff <= 1e-4, (encoder_diff, logits_diff)


def test_greedy_generation_matches_hugging_face(device):
    hf = pegasus(device)
    model = from_hf(hf).to(device)
    src, _ = batch(device)
    expected = hf.generate(input_ids=src, attention_mask=(src != PAD).long(), do_sample=False, num_beams=1,
                           max_new_tokens=12, eos_token_id=None, forced_eos_token_id=None)
    got = model.generate(src, 12, eos_id=None)
    assert got.shape == expected.shape == (2, 13)
    assert got.tolist() == expected.tolist()


def test_positions_are_sines_then_cosines():
    """Pegasus's table: sin(p w_i) in the first half of the features, cos(p w_i) in the second."""
    model = from_hf(pegasus("cpu"))
    table = model.pos_encoding.pe  # max_len e
    positions = torch.arange(48, dtype=torch.float64)[:, None]
    frequencies = 10000 ** (-torch.arange(0, 32, 2, dtype=torch.float64) / 32)
    expected = torch.cat([(positions * frequencies).sin(), (positions * frequencies).cos()], dim=-1)
    assert (table.double() - expected).abs().max() < 1e-6


def test_unsupported_options_raise_value_error():
    hf = transformers.PegasusForConditionalGeneration(transformers.PegasusConfig(**SIZES, activation_function="tanh"))
    with pytest.raises(ValueError, match="activation"):
        EncoderDecoder.from_hf(hf)
    hf = pegasus("cpu")
    with torch.no_grad():  # a trained position table cannot be rebuilt from the config
        hf.model.encoder.embed_positions.weight.add_(0.1)
    with pytest.raises(ValueError, match="position table"):
        EncoderDecoder.from_hf(hf)
