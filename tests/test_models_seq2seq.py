"""The encoder-decoder family: parity with Hugging Face BART, teacher forcing, greedy and beam search."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.constants import IGNORE_INDEX
from course_lib.generate import beam_search
from course_lib.models import EncoderDecoder, EncoderDecoderConfig
from tests.conftest import tolerance
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

PAD, EOS, VOCAB, MAX_SRC = 1, 2, 24, 7
# Hugging Face's BART generation config adds processors we do not model; switch them off.
NO_EXTRAS = dict(forced_eos_token_id=None, forced_bos_token_id=None, no_repeat_ngram_size=0, min_length=0,
                 pad_token_id=PAD, do_sample=False)


def reversal_batch(n, generator):
    """Right-padded sources of 2..7 tokens; the label is the reversed source, then eos."""
    src = torch.randint(3, VOCAB, (n, MAX_SRC), generator=generator)
    lengths = torch.randint(2, MAX_SRC + 1, (n,), generator=generator)
    src[torch.arange(MAX_SRC)[None] >= lengths[:, None]] = PAD
    labels = torch.full((n, MAX_SRC + 1), IGNORE_INDEX)
    for i, k in enumerate(lengths.tolist()):
        labels[i, :k] = src[i, :k].flip(0)
        labels[i, k] = EOS
    return src, labels


@pytest.fixture(scope="module")
def trained_bart():
    """A tiny BART trained for a few dozen steps on reversal: random BART weights only ever repeat one
    token, while a partly trained model has uncertain, varied continuations and ends at different
    lengths, which is what makes beam search, length penalties and early stopping matter."""
    torch.manual_seed(0)
    config = transformers.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                     decoder_ffn_dim=64, max_position_embeddings=32, dropout=0.0)
    hf = transformers.BartForConditionalGeneration(config)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(hf.parameters(), lr=3e-3)
    for _ in range(60):
        src, labels = reversal_batch(32, g)
        loss = hf(input_ids=src, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        hf.final_logits_bias.normal_(std=0.1)  # exercise the bias that BART adds to its logits
    return hf.eval()


@pytest.fixture
def pair(trained_bart, device):
    hf = trained_bart.to(device)
    return hf, EncoderDecoder.from_hf(hf).to(device)


def sources(device, n=4, seed=1):
    src, labels = reversal_batch(n, torch.Generator().manual_seed(seed))
    return src.to(device), labels.to(device)


def test_random_bart_matches_hugging_face(device):
    torch.manual_seed(0)
    config = transformers.BartConfig(vocab_size=60, d_model=32, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                     decoder_ffn_dim=64, max_position_embeddings=40, scale_embedding=True)
    hf = transformers.BartForConditionalGeneration(config).eval().to(device)
    model = EncoderDecoder.from_hf(hf).to(device)
    src, _ = sources(device)
    tgt = torch.randint(3, 60, (4, 6), device=device)
    with torch.no_grad():
        out = hf(input_ids=src, attention_mask=(src != PAD).long(), decoder_input_ids=tgt)
        torch.testing.assert_close(model.encode(src), out.encoder_last_hidden_state, **tolerance(torch.float32))
        torch.testing.assert_close(model(src, tgt), out.logits, **tolerance(torch.float32))


def test_teacher_forcing_loss_and_shift_match_hugging_face(pair, device):
    hf, model = pair
    src, labels = sources(device)
    shifted = transformers.models.bart.modeling_bart.shift_tokens_right(labels, PAD, hf.config.decoder_start_token_id)
    assert torch.equal(model.shift_right(labels), shifted)
    with torch.no_grad():
        expected = hf(input_ids=src, attention_mask=(src != PAD).long(), labels=labels).loss
        torch.testing.assert_close(model.loss(src, labels), expected, **tolerance(torch.float32))


def test_greedy_generation_matches_hugging_face(pair, device):
    hf, model = pair
    src, _ = sources(device)
    expected = hf.generate(src, attention_mask=(src != PAD).long(), max_new_tokens=9, eos_token_id=EOS, **NO_EXTRAS)
    got = model.generate(src, 9)
    assert got.tolist() == expected.tolist()
    assert (got == EOS)[:, 1:].any(), "the test should see rows that stop at eos"


SETTINGS = [(1.0, False), (2.0, True), (0.5, "never"), (-1.0, False), (1.0, True)]


@pytest.mark.parametrize("num_beams", [2, 3, 5])
def test_beam_search_matches_hugging_face(pair, device, num_beams):
    hf, model = pair
    src, _ = sources(device)
    outputs = set()
    for length_penalty, early_stopping in SETTINGS:
        expected = hf.generate(src, attention_mask=(src != PAD).long(), max_new_tokens=9, eos_token_id=EOS,
                               num_beams=num_beams, length_penalty=length_penalty, early_stopping=early_stopping,
                               **NO_EXTRAS)
        got = model.generate(src, 9, num_beams=num_beams, length_penalty=length_penalty,
                             early_stopping=early_stopping)
        assert got.tolist() == expected.tolist(), f"length_penalty={length_penalty}, early_stopping={early_stopping}"
        outputs.add(str(got.tolist()))
    assert len(outputs) > 1, "the settings should change the result, or this test checks too little"


def test_cached_greedy_equals_recomputing_the_prefix(pair, device):
    _, model = pair
    src, _ = sources(device)
    greedy = model.generate(src, 9, eos_id=None)
    context = model.encode(src)
    seq = greedy[:, :1]
    with torch.no_grad():
        for _ in range(9):
            next_token = model.decode(seq, context, (src != PAD)[:, None, None, :])[:, -1].argmax(-1)
            seq = torch.cat([seq, next_token[:, None]], dim=1)
    assert seq.tolist() == greedy.tolist()


@pytest.mark.parametrize("num_beams", [2, 5])
def test_cached_beam_search_equals_recomputing_the_prefix(pair, device, num_beams):
    # With 5 beams this fails if KVCache.reorder does nothing (checked by hand when written).
    _, model = pair
    src, _ = sources(device)
    with torch.no_grad():
        context = model.encode(src).repeat_interleave(num_beams, dim=0)  # (b k) s e
        mask = (src != PAD)[:, None, None, :].repeat_interleave(num_beams, dim=0)
        start = torch.full((src.shape[0], 1), model.config.decoder_start_id, device=device)
        for length_penalty, early_stopping in SETTINGS:
            recomputed = beam_search(
                lambda seqs: model.decode(seqs, context, mask)[:, -1], start, num_beams=num_beams, max_new_tokens=9, eos_id=EOS, pad_id=PAD, length_penalty=length_penalty,
                early_stopping=early_stopping)
            cached = model.generate(src, 9, num_beams=num_beams, length_penalty=length_penalty,
                                    early_stopping=early_stopping)
            assert cached.tolist() == recomputed.tolist(), f"{length_penalty}, {early_stopping}"


def test_sampling_with_a_seed_is_reproducible(pair, device):
    _, model = pair
    src, _ = sources(device)
    draws = [model.generate(src, 9, temperature=1.0, top_k=5,
                            generator=torch.Generator(device=device).manual_seed(3)) for _ in range(2)]
    assert draws[0].tolist() == draws[1].tolist()


def test_attention_weights_match_hugging_face(device):
    torch.manual_seed(0)
    config = transformers.BartConfig(vocab_size=60, d_model=32, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                     decoder_ffn_dim=64, max_position_embeddings=40)
    config._attn_implementation = "eager"  # the implementation that returns its weights
    hf = transformers.BartForConditionalGeneration(config).eval().to(device)
    model = EncoderDecoder.from_hf(hf).to(device)
    src, _ = sources(device)
    tgt = torch.randint(3, 60, (4, 6), device=device)
    with torch.no_grad():
        out = hf(input_ids=src, attention_mask=(src != PAD).long(), decoder_input_ids=tgt, output_attentions=True)
        logits, weights = model(src, tgt, need_weights=True)
        torch.testing.assert_close(logits, model(src, tgt), **tolerance(torch.float32))
    expected = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    assert sorted(weights) == sorted(expected)
    for kind, layers in expected.items():
        assert len(weights[kind]) == len(layers) == 2
        for ours, theirs in zip(weights[kind], layers):
            torch.testing.assert_close(ours, theirs, **tolerance(torch.float32), msg=lambda m: f"{kind}: {m}")
    padded = (src == PAD)[:, None, None, :].expand_as(weights["cross"][0])
    assert all((w[padded] == 0).all() for w in weights["cross"]), "a padded source token received attention"


def test_bart_initialisation():
    config = EncoderDecoderConfig(vocab_size=500, embed_dim=64, num_encoder_layers=2, num_decoder_layers=2,
                                  num_heads=4, hidden_dim=128, max_len=32, dropout=0.0)
    model = EncoderDecoder(config)
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            std = param.std().item() if "token_embed" not in name else param[torch.arange(500) != 1].std().item()
            assert abs(std - 0.02) < 0.004, f"{name}: std {std:.4f}, BART draws N(0, 0.02)"
        elif name.endswith("norm.weight"):
            assert torch.equal(param, torch.ones_like(param)), name
        else:
            assert torch.equal(param, torch.zeros_like(param)), name
    assert torch.equal(model.token_embed.weight[config.pad_id], torch.zeros(64)), "the padding row starts at 0"
    src, labels = torch.randint(3, 500, (8, 10)), torch.randint(3, 500, (8, 9))
    with torch.no_grad():
        loss = model.loss(src, labels).item()
        default = EncoderDecoder(EncoderDecoderConfig(**{**vars(config), "init_std": None}))
        default_loss = default.loss(src, labels).item()
    assert abs(loss - math.log(500)) < 0.1, f"a fresh model should guess uniformly: {loss:.2f} vs ln(v) {math.log(500):.2f}"
    assert default_loss > loss + 5, f"PyTorch's defaults (init_std=None) start far above ln(v), got {default_loss:.2f}"
    assert default.token_embed.weight.std() > 0.5, "init_std=None keeps the unit-variance embeddings"


def test_config_defaults_build():
    model = EncoderDecoder(EncoderDecoderConfig(vocab_size=30, embed_dim=16, num_encoder_layers=1,
                                                num_decoder_layers=1, num_heads=2, hidden_dim=32, max_len=16))
    assert model(torch.randint(3, 30, (2, 5)), torch.randint(3, 30, (2, 4))).shape == (2, 4, 30)
