"""CLIP: parity with Hugging Face, the contrastive loss from its definition, zero-shot classification."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.models import CLIP, CLIPConfig, CLIPTextConfig, VisionTransformerConfig, clip_loss
from tests.conftest import tolerance
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

EOS = 49


def hf_clip(device, hidden_act="quick_gelu", eos_token_id=EOS):
    transformers = pytest.importorskip("transformers")
    text = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=16, eos_token_id=eos_token_id, pad_token_id=0, bos_token_id=1,
                hidden_act=hidden_act)
    vision = dict(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, hidden_act=hidden_act)
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    return transformers.CLIPModel(config).eval().to(device)


def captions(device):
    """Right-padded captions that end at different positions with the eos token."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, EOS, (3, 8), generator=g)
    ends = [7, 4, 6]
    for row, end in enumerate(ends):
        ids[row, end] = EOS
        ids[row, end + 1:] = 0
    mask = (torch.arange(8)[None] <= torch.tensor(ends)[:, None]).long()
    return ids.to(device), mask.to(device)


@pytest.mark.parametrize("hidden_act, eos_token_id", [("quick_gelu", EOS), ("gelu", 2)])
def test_matches_hugging_face_clip(device, hidden_act, eos_token_id):
    hf = hf_clip(device, hidden_act, eos_token_id)
    model = CLIP.from_hf(hf).to(device)
    ids, mask = captions(device)
    # With eos_token_id=2 (old configs) both sides pool at the largest id, which is EOS = 49 here.
    images = torch.randn(3, 3, 16, 16, device=device)
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask, pixel_values=images, return_loss=True)
        logits = model(images, ids)
        tol = tolerance(torch.float32)
        torch.testing.assert_close(logits, out.logits_per_image, **tol)
        normalize = torch.nn.functional.normalize
        torch.testing.assert_close(normalize(model.encode_text(ids), dim=-1), out.text_embeds, **tol)
        torch.testing.assert_close(normalize(model.encode_image(images), dim=-1), out.image_embeds, **tol)
        torch.testing.assert_close(clip_loss(logits), out.loss, **tol)


def test_from_hf_builds_plain_quick_gelu_mlps_and_a_bias_free_patch_projection():
    from course_lib.nn import FeedForward

    model = CLIP.from_hf(hf_clip("cpu"))
    blocks = [*model.text_encoder.blocks, *model.image_encoder.blocks]
    assert all(type(block.ffn) is FeedForward and block.ffn.activation == "quick_gelu" for block in blocks)
    # HF's patch convolution has no bias, so ours has none either (rather than a zero bias).
    assert model.image_encoder.patch_embed.proj.bias is None
    assert not any("patch_embed.proj.bias" in key for key in model.state_dict())
    assert CLIPConfig().vision.patch_bias is False


def test_loss_equals_its_definition():
    torch.manual_seed(0)
    logits = torch.randn(5, 5, dtype=torch.float64) * 3
    values = logits.tolist()
    # Definition: average of "each image picks its caption" and "each caption picks its image".
    n = logits.shape[0]
    image_to_text = -sum(values[i][i] - math.log(sum(math.exp(values[i][j]) for j in range(n))) for i in range(n)) / n
    text_to_image = -sum(values[i][i] - math.log(sum(math.exp(values[j][i]) for j in range(n))) for i in range(n)) / n
    assert clip_loss(logits).item() == pytest.approx((image_to_text + text_to_image) / 2, rel=1e-6)
    # Perfectly separated pairs drive the loss to zero; a constant matrix gives log(n).
    assert clip_loss(torch.eye(4) * 100).item() < 1e-6
    assert clip_loss(torch.zeros(4, 4)).item() == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="square"):
        clip_loss(torch.zeros(2, 3))


COLOURS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def colour_images(labels, generator):
    """Noisy images whose colour is the class."""
    base = COLOURS[labels][:, :, None, None].expand(-1, -1, 8, 8)
    return base + 0.3 * torch.randn(base.shape, generator=generator)


def prompt(label):
    """'a photo of <colour word>' with eos 9: words 5..8 name the four colours."""
    return [1, 2, 3, 5 + label, 9, 0]


def test_zero_shot_ranks_the_matching_caption_first(device):
    torch.manual_seed(0)
    config = CLIPConfig(
        text=CLIPTextConfig(vocab_size=10, embed_dim=32, num_layers=1, num_heads=2, hidden_dim=64, max_len=8,
                            eos_id=9, pad_id=0),
        vision=VisionTransformerConfig(image_size=8, patch_size=4, embed_dim=32, num_layers=1, num_heads=2,
                                       hidden_dim=64, num_classes=0, norm_eps=1e-5, activation="quick_gelu",
                                       pre_norm=True),
        projection_dim=16,
    )
    model = CLIP(config).to(device)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        labels = torch.randperm(4, generator=g)  # a batch of the four distinct pairs
        images = colour_images(labels, g).to(device)
        ids = torch.tensor([prompt(k) for k in labels.tolist()], device=device)
        loss = clip_loss(model(images, ids))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    labels = torch.arange(4).repeat(3)
    probs = model.zero_shot_classify(colour_images(labels, g).to(device),
                                     torch.tensor([prompt(k) for k in range(4)], device=device))
    assert probs.shape == (12, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(12, device=device))
    assert probs.argmax(-1).cpu().tolist() == labels.tolist()
    # Prompt ensembling: two prompts per class (grouped by class) give the same ranking here.
    two = torch.tensor([p for k in range(4) for p in (prompt(k), prompt(k)[:3] + [5 + k, 9, 9])], device=device)
    ensembled = model.zero_shot_classify(colour_images(labels, g).to(device), two, prompts_per_class=2)
    assert ensembled.argmax(-1).cpu().tolist() == labels.tolist()


def test_retrieval_recall_scores_rankings_against_chance():
    from course_lib.recipes.multimodal import chance_recall, retrieval_recall

    labels = torch.tensor([0, 0, 1, 1, 2, 2])

    class Stub(torch.nn.Module):  # embeds an image and a caption by its digit, or by a shuffled one
        def __init__(self, caption_digits):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.caption_digits = caption_digits

        def encode_image(self, images):
            return torch.nn.functional.one_hot(labels, 3).float()

        def encode_text(self, text_ids):
            return torch.nn.functional.one_hot(self.caption_digits, 3).float()

    perfect = retrieval_recall(Stub(labels), torch.zeros(6, 1, 8, 8), torch.zeros(6, 3, dtype=torch.long), labels,
                               ks=(1, 2))
    assert perfect["image_to_text"] == {1: 1.0, 2: 1.0} and perfect["text_to_image"] == {1: 1.0, 2: 1.0}
    wrong = retrieval_recall(Stub((labels + 1) % 3), torch.zeros(6, 1, 8, 8), torch.zeros(6, 3, dtype=torch.long),
                             labels, ks=(1,))
    assert wrong["image_to_text"][1] == 0.0 and wrong["text_to_image"][1] == 0.0
    # 2 of the 6 candidates share the query's digit: a random first pick is right 1/3 of the time,
    # and a random pair misses both with probability C(4, 2) / C(6, 2) = 6/15.
    assert perfect["chance"][1] == pytest.approx(1 / 3)
    assert chance_recall(labels, 2) == pytest.approx(1 - 6 / 15)
