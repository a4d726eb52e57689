"""T5 and mT5 as options of the encoder-decoder: parity with Hugging Face, greedy generation."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import EncoderDecoder, EncoderDecoderConfig, from_hf
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

PAD, VOCAB = 0, 100
SIZES = dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
             relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=PAD)


def randomise_norms(hf):
    """Norm weights start at 1, which would hide a norm loaded into the wrong place."""
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "norm" in name:
                param.add_(0.2 * torch.randn_like(param))


def t5(device, **kw):
    torch.manual_seed(0)
    hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**SIZES, **kw))
    randomise_norms(hf)
    return hf.eval().to(device)


def mt5(device):
    """mT5's released checkpoints have an output head of their own; untie it as they do."""
    torch.manual_seed(0)
    hf = transformers.MT5ForConditionalGeneration(transformers.MT5Config(**SIZES))
    randomise_norms(hf)
    hf.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 32))
    return hf.eval().to(device)


BUILDS = {
    "t5-relu": lambda device: t5(device),
    "t5-gated-gelu": lambda device: t5(device, feed_forward_proj="gated-gelu"),
    "mt5": mt5,
}


def batch(device, b=2, s=9, t=6):
    """Sources with right padding in the second row; decoder inputs starting with the pad token."""
    g = torch.Generator().manual_seed(1)
    src = torch.randint(2, VOCAB, (b, s), generator=g)
    src[1, 5:] = PAD
    tgt = torch.randint(2, VOCAB, (b, t), generator=g)
    tgt[:, 0] = PAD
    return src.to(device), tgt.to(device)


@pytest.mark.parametrize("name", BUILDS)
def test_logits_match_hugging_face(device, name):
    hf = BUILDS[name](device)
    model = from_hf(hf).to(device)
    src, tgt = batch(device)
    with torch.no_grad():
        out = hf(input_ids=src, attention_mask=(src != PAD).long(), decoder_input_ids=tgt)
        encoder_diff = (model.encode(src) - out.encoder_last_hidden_state).abs().max().item()
        logits_diff = (model(src, tgt) - out.logits).abs().max().item()
    assert encoder_diff <= 1e-4 and logits_diff <= 1e-4, (encoder_diff, logits_diff)


def test_options_follow_the_checkpoint(device):
    relu, gated, multilingual = (from_hf(BUILDS[name](device)).config for name in BUILDS)
    assert (relu.ffn, relu.activation, gated.ffn, gated.activation) == ("mlp", "relu", "gated", "gelu_tanh")
    assert relu.tie_head and relu.scale_head, "T5's tied head reads the decoder output scaled by e**-0.5"
    assert not multilingual.tie_head and not multilingual.scale_head
    assert relu.attn_scale == 1.0 and relu.positions == "relative" and relu.decoder_start_id == PAD


def test_greedy_generation_matches_hugging_face(device):
    hf = t5(device)
    model = from_hf(hf).to(device)
    src, _ = batch(device)
    mask = (src != PAD).long()
    # Without an end token both write exactly 20 tokens: nothing is cut short.
    expected = hf.generate(input_ids=src, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=20,
                           eos_token_id=None)
    got = model.generate(src, 20, eos_id=None)
    assert got.shape == expected.shape == (2, 21)
    assert got.tolist() == expected.tolist()
    # An end token that greedy decoding really emits: the first row stops there, and pads after it.
    stop = int(expected[0, 4])
    expected = hf.generate(input_ids=src, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=20,
                           eos_token_id=stop)
    got = model.generate(src, 20, eos_id=stop)
    assert got.tolist() == expected.tolist()
    first_stop = got[0].tolist().index(stop, 1)
    assert (got[0, first_stop + 1:] == PAD).all(), "a row that emitted its end token must only pad afterwards"


def test_the_start_token_embedding_trains():
    """T5 starts decoding with the pad token, so its row must receive a gradient (through the input:
    mT5's head is untied, so the head adds none to the table)."""
    hf = mt5("cpu")
    model = from_hf(hf).train()
    src, tgt = batch("cpu")
    model.loss(src, tgt).backward()
    assert model.token_embed.weight.grad[PAD].abs().sum() > 0


@pytest.mark.parametrize("change, message", [
    (dict(feed_forward_proj="tanh"), "feed_forward_proj"),
    (dict(d_kv=16), "d_kv"),
])
def test_unsupported_options_raise_value_error(change, message):
    torch.manual_seed(0)
    hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**{**SIZES, **change}))
    with pytest.raises(ValueError, match=message):
        EncoderDecoder.from_hf(hf)


def test_unknown_config_options_raise_value_error():
    with pytest.raises(ValueError, match="positions"):
        EncoderDecoder(EncoderDecoderConfig(vocab_size=20, embed_dim=16, num_heads=2, hidden_dim=32,
                                            positions="alibi"))
    with pytest.raises(ValueError, match="norm"):
        EncoderDecoder(EncoderDecoderConfig(vocab_size=20, embed_dim=16, num_heads=2, hidden_dim=32,
                                            norm="batchnorm"))


def test_t5_initialisation_follows_mesh_tensorflow():
    """A T5 built from scratch (the converter's options) gets T5's own scaled normals, and so
    starts predicting near-uniformly: its first loss is close to ln(v)."""
    import math

    torch.manual_seed(0)
    e, h, f, v = 64, 4, 256, 500
    options = dict(EncoderDecoder.from_hf(t5("cpu")).config.__dict__)
    options.update(vocab_size=v, embed_dim=e, num_heads=h, hidden_dim=f, num_encoder_layers=2,
                   num_decoder_layers=2, dropout=0.0, pad_id=0, eos_id=1, decoder_start_id=0, bos_id=None)
    model = EncoderDecoder(EncoderDecoderConfig(**options))
    assert model.config.init_scheme == "t5"
    block = model.encoder_blocks[0]
    expected = {"token": (model.token_embed.weight, 1.0), "q": (block.self_attn.q_proj.weight, (e * e / h) ** -0.5),
                "k": (block.self_attn.k_proj.weight, e ** -0.5), "out": (block.self_attn.out_proj.weight, e ** -0.5),
                "up": (block.ffn.up_proj.weight, e ** -0.5), "down": (block.ffn.down_proj.weight, f ** -0.5)}
    for name, (weight, std) in expected.items():
        assert abs(weight.std().item() / std - 1) < 0.1, f"{name}: std {weight.std().item():.4f}, T5 uses {std:.4f}"
    src, tgt = torch.randint(2, v, (8, 12)), torch.randint(2, v, (8, 10))
    with torch.no_grad():
        loss = model.loss(src, tgt).item()
    assert abs(loss - math.log(v)) < 1.0, f"first loss {loss:.2f}, ln(v) = {math.log(v):.2f}"
    with pytest.raises(ValueError, match="init_scheme"):
        EncoderDecoder(EncoderDecoderConfig(vocab_size=20, embed_dim=16, num_heads=2, hidden_dim=32, init_scheme="xavier"))
