"""The image captioner: shapes, causality, that the image matters, the teacher-forced loss, and
cached greedy decoding equal to recomputing the whole prefix."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.models import Captioner, CaptionerConfig, VisionTransformerConfig
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

VISION = VisionTransformerConfig(image_size=8, patch_size=2, in_channels=1, embed_dim=32, num_layers=1,
                                 num_heads=2, hidden_dim=64, num_classes=0)
CONFIG = CaptionerConfig(vision=VISION, vocab_size=11, num_layers=2, num_heads=2, hidden_dim=64, max_len=8,
                         pad_id=0, bos_id=1, eos_id=2)


def model_on(device) -> Captioner:
    torch.manual_seed(0)
    model = Captioner(CONFIG).to(device).eval()
    with torch.no_grad():  # a random table large enough that greedy choices are not ties
        model.token_embed.weight.normal_()
    return model


def test_logits_shape_causality_and_the_image_matters(device):
    model = model_on(device)
    images = torch.rand(2, 1, 8, 8, device=device)
    ids = torch.randint(3, 11, (2, 5), device=device)
    logits = model(images, ids)
    assert logits.shape == (2, 5, 11)
    changed = ids.clone()
    changed[:, 3] = (changed[:, 3] - 2) % 8 + 3
    after = model(images, changed)
    torch.testing.assert_close(after[:, :3], logits[:, :3])  # positions before 3 cannot see it
    assert not torch.allclose(after[:, 3:], logits[:, 3:])
    other = model(images.flip(0), ids)  # swap the two images: every position reads them
    assert not torch.allclose(other[:, 0], logits[:, 0])


def test_loss_reads_bos_first_and_ends_with_eos():
    model = model_on("cpu")
    images = torch.rand(2, 1, 8, 8)
    captions = torch.tensor([[5, 6, 7], [8, 9, 0]])  # the second is one token shorter (padding 0)
    inputs = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 0]])
    targets = torch.tensor([[5, 6, 7, 2], [8, 9, 2, -100]])
    expected = F.cross_entropy(model(images, inputs).flatten(0, 1), targets.flatten())
    torch.testing.assert_close(model.loss(images, captions), expected)


def test_cached_greedy_decoding_equals_recomputing_the_prefix(device):
    model = model_on(device)
    images = torch.rand(3, 1, 8, 8, device=device)
    out = model.generate(images, max_new_tokens=6)
    assert out.shape[0] == 3 and out.shape[1] <= 7 and (out[:, 0] == 1).all()
    ids = torch.ones(3, 1, dtype=torch.long, device=device)
    for _ in range(out.shape[1] - 1):  # no cache: the whole prefix again at every step
        ids = torch.cat([ids, model(images, ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    for row, expected in zip(out.tolist(), ids.tolist()):
        if 2 in expected:  # after <eos> a row is padded
            end = expected.index(2) + 1
            expected = expected[:end] + [0] * (len(expected) - end)
        assert row == expected


def test_the_image_encoder_must_have_no_head():
    with pytest.raises(ValueError, match="num_classes=0"):
        Captioner(CaptionerConfig(vision=VisionTransformerConfig(image_size=8, patch_size=2, in_channels=1,
                                                                 embed_dim=32, num_layers=1, num_heads=2,
                                                                 hidden_dim=64, num_classes=10)))
