"""TokenEmbedding (scaling, padding, weight tying) and PatchEmbedding (against an unfold)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.nn import PatchEmbedding, TokenEmbedding
from tests.conftest import tolerance

DTYPES = [torch.float32, torch.float64, torch.bfloat16]
VOCAB, EMBED = 11, 8


@pytest.fixture(autouse=True)
def _no_tf32_in_cudnn():
    """On NVIDIA GPUs cuDNN may round float32 to TF32 (10-bit mantissa), which would put
    the patch convolution ~1e-3 away from the unfold matmul.
    These tests check the arithmetic, so keep cuDNN in full float32 while they run."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = previous


def _skip_unsupported(device: torch.device, dtype: torch.dtype) -> None:
    if device.type == "mps" and dtype == torch.float64:
        pytest.skip("MPS has no float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [False, True])
def test_token_embedding_matches_torch_embedding(device, dtype, scale):
    _skip_unsupported(device, dtype)
    ours = TokenEmbedding(VOCAB, EMBED, padding_idx=0, scale=scale).to(device, dtype)
    theirs = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0).to(device, dtype)
    theirs.load_state_dict(ours.state_dict())  # a single "weight (v, e)"
    ids = torch.tensor([[3, 0, 7, 3], [10, 1, 0, 2]], device=device)
    out = ours(ids)
    factor = math.sqrt(EMBED) if scale else 1.0
    assert out.shape == (2, 4, EMBED) and out.dtype == dtype
    torch.testing.assert_close(out, theirs(ids) * factor, **tolerance(dtype))
    # Gradients: repeated ids accumulate, the padding row gets none.
    upstream = torch.randn_like(out)
    out.backward(upstream)
    (theirs(ids) * factor).backward(upstream)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, **tolerance(dtype))
    assert torch.count_nonzero(ours.weight.grad[0]) == 0


def test_padding_row_starts_at_zero_and_scaled_init_has_unit_variance_output():
    emb = TokenEmbedding(1000, 64, padding_idx=5, scale=True)
    assert torch.count_nonzero(emb.weight[5]) == 0
    # std e^-1/2 times sqrt(e): unit variance, to within sampling error of 64k draws.
    out = emb(torch.arange(1000).view(10, 100))
    assert abs(out.std().item() - 1.0) < 0.02


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weight_tying_shares_storage_and_gradients(device, dtype):
    _skip_unsupported(device, dtype)
    emb = TokenEmbedding(VOCAB, EMBED).to(device, dtype)
    head = torch.nn.Linear(EMBED, VOCAB, bias=False).to(device, dtype)
    head.weight = emb.weight  # tie
    assert head.weight is emb.weight
    assert head.weight.data_ptr() == emb.weight.data_ptr()
    x = torch.randn(2, 3, EMBED, device=device, dtype=dtype)
    logits = emb.attend(x)
    assert logits.shape == (2, 3, VOCAB)
    torch.testing.assert_close(logits, head(x), **tolerance(dtype))
    torch.testing.assert_close(logits, x @ emb.weight.detach().T, **tolerance(dtype))
    with torch.no_grad():
        emb.weight[1].fill_(2.0)  # an in-place edit through one name is seen through the other
    assert torch.equal(head.weight[1], torch.full((EMBED,), 2.0, device=device, dtype=dtype))

    # Both uses of the one parameter add their gradients into the same .grad.
    ids = torch.tensor([[1, 2, 2]], device=device)
    loss_in = (emb(ids) ** 2).sum()
    loss_out = emb.attend(x).logsumexp(-1).sum()
    g_in, = torch.autograd.grad(loss_in, emb.weight)
    g_out, = torch.autograd.grad(loss_out, emb.weight)
    (emb(ids) ** 2).sum().add(head(x).logsumexp(-1).sum()).backward()
    torch.testing.assert_close(emb.weight.grad, g_in + g_out, **tolerance(dtype))
    assert head.weight.grad is emb.weight.grad


def test_token_embedding_bad_input(device):
    emb = TokenEmbedding(VOCAB, EMBED).to(device)
    with pytest.raises(ValueError, match=r"ids must have shape \(b, t\), got \(4,\)"):
        emb(torch.tensor([1, 2, 3, 4], device=device))
    with pytest.raises(ValueError, match=r"ids must be an integer tensor.*float32.*\(1, 2\)"):
        emb(torch.tensor([[1.0, 2.0]], device=device))
    with pytest.raises(ValueError, match=r"x must have shape \(b, t, 8\), got \(2, 3, 7\)"):
        emb.attend(torch.randn(2, 3, 7, device=device))
    with pytest.raises(ValueError, match="padding_idx"):
        TokenEmbedding(VOCAB, EMBED, padding_idx=VOCAB)


def _patches_by_unfold(patch: PatchEmbedding, images: torch.Tensor) -> torch.Tensor:
    """Cut patches with F.unfold and apply the conv's weights as one matrix product."""
    cols = F.unfold(images, kernel_size=patch.patch_size, stride=patch.patch_size)  # b (c ph pw) n
    weight = patch.proj.weight.reshape(patch.embed_dim, -1)  # e (c ph pw)
    bias = 0 if patch.proj.bias is None else patch.proj.bias
    return cols.transpose(1, 2) @ weight.T + bias  # b n e


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("image_size,patch_size", [(8, 4), ((8, 12), 4), ((6, 8), (3, 2))])
def test_patch_embedding_matches_unfold(device, dtype, image_size, patch_size):
    _skip_unsupported(device, dtype)
    patch = PatchEmbedding(image_size=image_size, patch_size=patch_size, in_channels=3, embed_dim=EMBED)
    patch = patch.to(device, dtype)
    h, w = patch.image_size
    images = torch.randn(2, 3, h, w, device=device, dtype=dtype)
    out = patch(images)
    expected_n = (h // patch.patch_size[0]) * (w // patch.patch_size[1])
    assert patch.num_patches == expected_n
    assert out.shape == (2, expected_n, EMBED) and out.dtype == dtype
    # bf16 convolution and matmul accumulate differently over c * ph * pw = 48 products.
    tol = tolerance(dtype) if dtype != torch.bfloat16 else dict(atol=5e-2, rtol=2e-2)
    torch.testing.assert_close(out, _patches_by_unfold(patch, images), **tol)


def test_patch_embedding_without_bias(device):
    patch = PatchEmbedding(image_size=8, patch_size=4, in_channels=3, embed_dim=EMBED, bias=False).to(device)
    assert patch.proj.bias is None and [name for name, _ in patch.named_parameters()] == ["proj.weight"]
    images = torch.randn(2, 3, 8, 8, device=device)
    torch.testing.assert_close(patch(images), _patches_by_unfold(patch, images), **tolerance(torch.float32))
    # Linear with no offset: a black image maps to exactly zero vectors.
    assert torch.equal(patch(torch.zeros_like(images)), torch.zeros(2, 4, EMBED, device=device))


def test_patch_order_is_row_major(device):
    # Patch k must depend only on its own pixels: perturb the pixels of patch (row 1, col 2).
    patch = PatchEmbedding(image_size=(8, 12), patch_size=4, in_channels=1, embed_dim=EMBED).to(device)
    images = torch.zeros(1, 1, 8, 12, device=device)
    changed = images.clone()
    changed[..., 4:8, 8:12] = 1.0
    diff = (patch(changed) - patch(images)).abs().sum(-1)[0]  # n
    assert diff.nonzero().flatten().tolist() == [1 * 3 + 2]


def test_patch_embedding_bad_input(device):
    patch = PatchEmbedding(image_size=8, patch_size=4, in_channels=3, embed_dim=EMBED).to(device)
    with pytest.raises(ValueError, match=r"images must have shape \(b, 3, 8, 8\), got \(3, 8, 8\)"):
        patch(torch.randn(3, 8, 8, device=device))
    with pytest.raises(ValueError, match=r"images must have shape \(b, 3, 8, 8\), got \(2, 1, 8, 8\)"):
        patch(torch.randn(2, 1, 8, 8, device=device))
    with pytest.raises(ValueError, match=r"images must have shape \(b, 3, 8, 8\), got \(2, 3, 12, 8\)"):
        patch(torch.randn(2, 3, 12, 8, device=device))
    with pytest.raises(ValueError, match=r"image_size \(10, 10\) must be a multiple of patch_size \(4, 4\)"):
        PatchEmbedding(image_size=10, patch_size=4, in_channels=3, embed_dim=EMBED)
