"""FLAVA: parity with Hugging Face's FlavaModel (all three encoders and the contrastive head),
the layout of the multimodal sequence, and clear errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.models import FLAVA, from_hf
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

PAD, PATCHES = 0, (16 // 4) ** 2


def hf_flava(device, hidden_act="gelu", use_cls_token=True):
    text = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=32, pad_token_id=PAD, hidden_act=hidden_act)
    image = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=16,
                 patch_size=4, hidden_act=hidden_act)
    multimodal = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                      hidden_act=hidden_act, use_cls_token=use_cls_token)
    config = transformers.FlavaConfig(text_config=text, image_config=image, multimodal_config=multimodal,
                                      projection_dim=24)
    model = transformers.FlavaModel(config).eval()
    # HF starts the [CLS] tokens and the image positions at zero: randomise them, so that a
    # misplaced or forgotten one changes the output.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "cls_token" in name or "embeddings.position_embeddings" in name:
                param.copy_(torch.randn(param.shape, generator=g))
    return model.to(device)


def batch(device):
    """Three texts (two right-padded) and three images."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (3, 7), generator=g)
    ids[1, 5:] = PAD
    ids[2, 3:] = PAD
    pixels = torch.randn(3, 3, 16, 16, generator=g)
    return ids.to(device), (ids != PAD).to(device), pixels.to(device)


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("hidden_act, use_cls_token", [("gelu", True), ("gelu_new", False)])
def test_matches_hugging_face_flava_with_padding(device, hidden_act, use_cls_token):
    hf = hf_flava(device, hidden_act, use_cls_token)
    model = from_hf(hf).to(device)
    assert isinstance(model, FLAVA)
    ids, keep, pixels = batch(device)
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=pixels, attention_mask=keep.long())
        mm = model(ids, pixels, keep)
        assert mm.shape == out.multimodal_output.last_hidden_state.shape
        assert max_diff(mm, out.multimodal_output.last_hidden_state) <= 1e-4
        assert max_diff(model.encode_text(ids, keep), out.text_embeddings) <= 1e-4
        assert max_diff(model.encode_image(pixels), out.image_embeddings) <= 1e-4
        # Without a mask, the padding mask is built from pad_id: the same numbers.
        assert max_diff(model(ids, pixels), mm) <= 1e-6
        # The padding mask matters: attending to the pads changes the real positions' states.
        unmasked = model(ids, pixels, torch.ones_like(keep))
        assert max_diff(unmasked[2, : mm.shape[1] - 4], mm[2, : mm.shape[1] - 4]) > 1e-3


def test_similarity_matches_hugging_face_contrastive_logits(device):
    hf = hf_flava(device)
    model = from_hf(hf).to(device)
    ids, keep, pixels = batch(device)
    with torch.no_grad():
        # FlavaForPreTraining's contrastive logits: normalised projections of each [CLS] state.
        text = F.normalize(hf.get_text_features(input_ids=ids, attention_mask=keep.long()).pooler_output[:, 0], dim=-1)
        image = F.normalize(hf.get_image_features(pixel_values=pixels).pooler_output[:, 0], dim=-1)
        expected = hf.logit_scale.exp() * image @ text.t()
        assert max_diff(model.similarity(ids, pixels, keep), expected) <= 1e-4


def test_the_multimodal_sequence_is_cls_then_image_then_text():
    model = from_hf(hf_flava("cpu"))
    ids, keep, pixels = batch("cpu")
    assert model(ids, pixels, keep).shape == (3, 1 + (1 + PATCHES) + ids.shape[1], 48)
    # The text positions come last: changing a padded token's id changes only its own row
    # of the text encoder (masked keys), and nothing at the [CLS] or the image positions.
    other = ids.clone()
    other[2, -1] = 42
    with torch.no_grad():
        a, b = model(ids, pixels, keep), model(other, pixels, keep)
    assert max_diff(a[:, : 2 + PATCHES], b[:, : 2 + PATCHES]) <= 1e-6
    assert max_diff(a[2, -1], b[2, -1]) > 1e-3


def test_unsupported_activation_raises():
    hf = hf_flava("cpu", hidden_act="silu")
    with pytest.raises(ValueError, match="hidden_act 'silu'"):
        FLAVA.from_hf(hf)


def test_bad_inputs_raise_clear_errors():
    model = from_hf(hf_flava("cpu"))
    ids, keep, pixels = batch("cpu")
    with pytest.raises(ValueError, match="boolean"):
        model(ids, pixels, keep.long())
    with pytest.raises(ValueError, match=r"\(b, t\)"):
        model(ids, pixels, keep[:, :4])
    with pytest.raises(ValueError, match="one image per text"):
        model(ids, pixels[:2], keep)
    with pytest.raises(ValueError, match="images must have shape"):
        model.encode_image(pixels[:, :, :8])
