"""The VQ-VAE tokenizer: shapes, nearest-code lookup, the straight-through gradient, the moving-
average codebook, restarts of unused codes, and code-use perplexity."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.models import VQVAE, VectorQuantizer, VQVAEConfig, code_perplexity
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

CONFIG = VQVAEConfig(image_size=8, in_channels=1, hidden_dim=16, code_dim=4, num_codes=8)


def test_shapes_and_round_trip(device):
    torch.manual_seed(0)
    model = VQVAE(CONFIG).to(device).eval()
    images = torch.rand(5, 1, 8, 8, device=device)
    reconstruction, tokens, commitment = model(images)
    assert reconstruction.shape == images.shape and tokens.shape == (5, 4, 4) and commitment.dim() == 0
    assert tokens.min() >= 0 and tokens.max() < CONFIG.num_codes
    # encode/decode are the two halves of forward.
    assert torch.equal(model.encode(images), tokens)
    torch.testing.assert_close(model.decode(tokens), reconstruction)
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1  # pixels stay in [0, 1]
    with pytest.raises(ValueError, match="images must have shape"):
        model.encode(torch.rand(2, 1, 6, 6, device=device))


def test_tokens_are_the_nearest_codes():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(num_codes=6, code_dim=3).eval()
    z_e = torch.randn(2, 3, 4, 4)
    z_q, tokens, _ = quantizer(z_e)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    distances = ((vectors[:, None] - quantizer.codebook[None]) ** 2).sum(-1)  # N K
    assert tokens.flatten().tolist() == distances.argmin(1).tolist()
    # The forward value is the chosen code itself.
    torch.testing.assert_close(z_q.permute(0, 2, 3, 1).reshape(-1, 3), quantizer.codebook[tokens.flatten()])


def test_straight_through_passes_the_gradient_to_the_encoder():
    torch.manual_seed(0)
    model = VQVAE(CONFIG)
    loss = torch.nn.functional.mse_loss(model(torch.rand(4, 1, 8, 8))[0], torch.rand(4, 1, 8, 8))
    loss.backward()  # the reconstruction term alone: it reaches the encoder only through the estimator
    assert model.encoder[0].weight.grad is not None and model.encoder[0].weight.grad.abs().sum() > 0
    assert not model.quantizer.codebook.requires_grad  # moved by moving averages, not by gradients


def test_codebook_moves_towards_its_vectors_only_in_training():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(num_codes=4, code_dim=2, decay=0.5, restart_below=0.0)
    z_e = torch.randn(1, 2, 4, 4)
    before = quantizer.codebook.clone()
    quantizer.eval()(z_e)
    assert torch.equal(quantizer.codebook, before), "evaluation must not change the codebook"
    _, tokens, _ = quantizer.train()(z_e)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    used = tokens.flatten().unique()
    for k in used.tolist():
        mean = vectors[tokens.flatten() == k].mean(0)
        # Closer to the mean of its vectors than before the update.
        assert (quantizer.codebook[k] - mean).norm() < (before[k] - mean).norm()


def test_unused_codes_restart_at_encoder_outputs():
    quantizer = VectorQuantizer(num_codes=4, code_dim=2, decay=0.5, restart_below=0.3)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]]))
        quantizer.ema_sum.copy_(quantizer.codebook * quantizer.ema_count[:, None])
    z_e = torch.randn(1, 2, 4, 4) * 0.1  # every vector is nearest to code 0
    for _ in range(2):  # the counts of codes 1-3 halve each step: 1 -> 0.5 -> 0.25 < 0.3, restart
        quantizer.train()(z_e)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    for k in (1, 2, 3):
        assert torch.isclose(quantizer.codebook[k], vectors).all(-1).any(), f"code {k} was not restarted"


def test_code_perplexity():
    assert code_perplexity(torch.arange(8).repeat(3), 8) == pytest.approx(8)
    assert code_perplexity(torch.zeros(10, dtype=torch.long), 8) == pytest.approx(1)
    # Two codes, used 3:1: exp of the entropy.
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert code_perplexity(torch.tensor([0, 0, 0, 1]), 8) == pytest.approx(math.exp(entropy))


def test_a_few_steps_lower_the_reconstruction_error():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    model = VQVAE(CONFIG)
    images = torch.tensor(load_digits().images[:32], dtype=torch.float32)[:, None] / 16  # b 1 8 8 in [0, 1]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = torch.nn.functional.mse_loss(model(images)[0], images).item()
    for _ in range(50):
        optimizer.zero_grad()
        model.loss(images).backward()
        optimizer.step()
    # Measured: 0.179 -> 0.067.
    assert torch.nn.functional.mse_loss(model(images)[0], images).item() < first / 2
