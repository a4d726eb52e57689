"""DALL-E-style text to image: the joint sequence, image-only sampling, the patch quantizer."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import PatchQuantizer, TextToImage, TextToImageConfig
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

CONFIG = TextToImageConfig(text_vocab_size=12, image_vocab_size=6, text_len=4, image_grid=3, embed_dim=32,
                           num_layers=1, num_heads=2, hidden_dim=64)


def test_joint_sequence_layout():
    model = TextToImage(CONFIG)
    text = torch.tensor([[3, 4, 0, 0]])
    image = torch.arange(9).view(1, 3, 3) % 6
    seq = model.sequence(text, image)
    # text, then <image> (= text_vocab_size), then image tokens shifted past the text vocabulary.
    assert seq.tolist() == [[3, 4, 0, 0, 12] + [13 + j for j in (image.flatten() % 6).tolist()]]
    with pytest.raises(ValueError, match="text_ids"):
        model.sequence(torch.zeros(1, 5, dtype=torch.long), image)


def test_generation_emits_only_image_tokens_and_cache_changes_nothing(device):
    torch.manual_seed(0)
    model = TextToImage(CONFIG).eval().to(device)
    text = torch.randint(0, 12, (16, 4), device=device)
    draws = [model.generate(text, temperature=1.5, use_cache=use_cache,
                            generator=torch.Generator(device=device).manual_seed(5)) for use_cache in (True, False)]
    assert draws[0].shape == (16, 3, 3)
    assert draws[0].tolist() == draws[1].tolist()
    assert draws[0].min() >= 0 and draws[0].max() < 6


def stripes(kind):
    """Two 6x6 two-colour images made of 2x2 patches: vertical or horizontal stripes."""
    image = torch.zeros(3, 6, 6)
    for k in range(3):
        band = slice(2 * k, 2 * k + 2)
        colour = torch.tensor([1.0, 0.0, 0.0]) if k % 2 == 0 else torch.tensor([0.0, 0.0, 1.0])
        if kind == "vertical":
            image[:, :, band] = colour[:, None, None]
        else:
            image[:, band, :] = colour[:, None, None]
    return image


def test_quantizer_round_trip_and_overfitting_two_captions():
    images = torch.stack([stripes("vertical"), stripes("horizontal")])
    quantizer = PatchQuantizer.fit(images, num_codes=2, patch_size=2, generator=torch.Generator().manual_seed(0))
    tokens = quantizer.encode(images)  # 2 3 3
    assert tokens.shape == (2, 3, 3)
    torch.testing.assert_close(quantizer.decode(tokens), images)  # images made of codebook patches come back exactly
    assert not torch.equal(tokens[0], tokens[1])

    torch.manual_seed(0)
    config = TextToImageConfig(text_vocab_size=4, image_vocab_size=2, text_len=2, image_grid=3, embed_dim=32,
                               num_layers=1, num_heads=2, hidden_dim=64)
    model = TextToImage(config)
    captions = torch.tensor([[1, 2], [1, 3]])  # "stripes vertical", "stripes horizontal"
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = model.loss(captions, tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    generated = model.eval().generate(captions, temperature=0.0)
    assert generated.tolist() == tokens.tolist()
    torch.testing.assert_close(quantizer.decode(generated), images)


def test_quantizer_rejects_bad_shapes():
    with pytest.raises(ValueError, match="codebook"):
        PatchQuantizer(torch.zeros(4, 5), patch_size=2, in_channels=3)
    quantizer = PatchQuantizer(torch.zeros(4, 12), patch_size=2, in_channels=3)
    with pytest.raises(ValueError, match="images"):
        quantizer.encode(torch.zeros(1, 3, 5, 5))
