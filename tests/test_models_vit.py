"""The Vision Transformer: parity with Hugging Face ViT."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import VisionTransformer, VisionTransformerConfig
from tests.conftest import tolerance
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

HF_CONFIG = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=64, num_labels=5)


def test_hidden_states_match_vit_model(device):
    hf = transformers.ViTModel(transformers.ViTConfig(**HF_CONFIG)).eval().to(device)
    model = VisionTransformer.from_hf(hf).to(device)
    assert model.head is None
    images = torch.randn(2, 3, 16, 16, device=device)
    with torch.no_grad():
        expected = hf(pixel_values=images).last_hidden_state
        torch.testing.assert_close(model.features(images), expected, **tolerance(torch.float32))
        torch.testing.assert_close(model(images), expected[:, 0], **tolerance(torch.float32))


def test_logits_match_vit_for_image_classification(device):
    hf = transformers.ViTForImageClassification(transformers.ViTConfig(**HF_CONFIG)).eval().to(device)
    model = VisionTransformer.from_hf(hf).to(device)
    images = torch.randn(3, 3, 16, 16, device=device)
    with torch.no_grad():
        torch.testing.assert_close(model(images), hf(pixel_values=images).logits, **tolerance(torch.float32))


@pytest.mark.parametrize("model_class", ["ViTModel", "ViTForImageClassification"])
def test_qkv_bias_false_matches_hugging_face(device, model_class):
    hf_class = getattr(transformers, model_class)
    hf = hf_class(transformers.ViTConfig(**HF_CONFIG, qkv_bias=False)).eval().to(device)
    model = VisionTransformer.from_hf(hf).to(device)
    attn = model.blocks[0].self_attn
    assert attn.q_proj.bias is None and attn.k_proj.bias is None and attn.v_proj.bias is None
    assert attn.out_proj.bias is not None, "HF's qkv_bias leaves the output projection's bias in place"
    images = torch.randn(2, 3, 16, 16, device=device)
    with torch.no_grad():
        out = hf(pixel_values=images)
        expected = out.logits if model_class == "ViTForImageClassification" else out.last_hidden_state[:, 0]
        got = model(images)
    print(f"ViT qkv_bias=False [{model_class}, {device}]: max abs diff {(got - expected).abs().max().item():.2e}")
    torch.testing.assert_close(got, expected, **tolerance(torch.float32))


def test_cls_token_sees_every_patch():
    model = VisionTransformer(VisionTransformerConfig(image_size=8, patch_size=4, embed_dim=16, num_layers=1,
                                                      num_heads=2, hidden_dim=32, num_classes=3)).eval()
    images = torch.randn(1, 3, 8, 8, requires_grad=True)
    model(images)[0, 0].backward()
    # Each of the four 4x4 patches influences the class logit.
    per_patch = images.grad.abs().unfold(2, 4, 4).unfold(3, 4, 4).sum(dim=(0, 1, 4, 5))
    assert (per_patch > 0).all()
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(1, 3, 12, 12))


def test_attention_weights_match_hugging_face(device):
    config = transformers.ViTConfig(**HF_CONFIG)
    config._attn_implementation = "eager"  # the implementation that returns its weights
    hf = transformers.ViTForImageClassification(config).eval().to(device)
    model = VisionTransformer.from_hf(hf).to(device)
    images = torch.randn(2, 3, 16, 16, device=device)
    with torch.no_grad():
        out = hf(pixel_values=images, output_attentions=True)
        logits, weights = model(images, need_weights=True)
        states, same_weights = model.features(images, need_weights=True)
    torch.testing.assert_close(logits, out.logits, **tolerance(torch.float32))
    torch.testing.assert_close(states, model.features(images), **tolerance(torch.float32))
    assert len(weights) == len(out.attentions) == 2
    for ours, again, theirs in zip(weights, same_weights, out.attentions):
        assert ours.shape == (2, 4, 17, 17)
        torch.testing.assert_close(ours, theirs, **tolerance(torch.float32))
        torch.testing.assert_close(again, ours, **tolerance(torch.float32))
