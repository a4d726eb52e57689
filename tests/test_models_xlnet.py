"""XLNet: relative attention and the two streams, against Hugging Face's XLNetLMHeadModel."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import from_hf
from course_lib.models.objectives import permutation_masks
from course_lib.models.xlnet import XLNet, XLNetConfig, relative_shift
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

transformers = pytest.importorskip("transformers")

HF_CONFIG = dict(vocab_size=100, d_model=32, n_layer=2, n_head=4, d_inner=64, mem_len=None)
T = 9


def spread(hf, std=0.3):
    """Redraw every weight N(0, std), seeded: at HF's init (0.02) some terms are too small for a
    wrong implementation to move the logits by 1e-4. Tied weights stay tied (one tensor)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in hf.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * std)
    return hf


def hf_xlnet(device, **overrides):
    torch.manual_seed(0)
    config = transformers.XLNetConfig(**{**HF_CONFIG, **overrides})
    return spread(transformers.XLNetLMHeadModel(config)).eval().to(device)


def batch(device):
    """Two rows, the second left-padded (XLNet's habit), with two segments."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(6, 100, (2, T), generator=g)
    keep = torch.ones(2, T, dtype=torch.bool)
    keep[1, :3] = False
    segments = torch.zeros_like(ids)
    segments[:, 5:] = 1
    return ids.to(device), keep.to(device), segments.to(device)


def max_diff(got, expected):
    assert got.shape == expected.shape
    return (got - expected).abs().max().item()


@pytest.mark.parametrize("clamp_len", [-1, 3])
def test_content_stream_logits_match_hugging_face(device, clamp_len):
    hf = hf_xlnet(device, clamp_len=clamp_len)
    model = from_hf(hf).to(device)
    assert isinstance(model, XLNet)
    ids, keep, segments = batch(device)
    with torch.no_grad():
        expected = hf(ids, attention_mask=keep.long(), token_type_ids=segments, use_mems=False).logits
        got = model(ids, segments, attn_mask=keep)
        plain = max_diff(model(ids), hf(ids, use_mems=False).logits)  # no mask, no segments
    diff = max_diff(got[keep], expected[keep])
    assert diff <= 1e-4 and plain <= 1e-4, f"max |ours - HF| = {diff:.2e} (padded), {plain:.2e} (plain)"


def test_two_stream_logits_for_targets_match_hugging_face(device):
    hf = hf_xlnet(device)
    model = from_hf(hf).to(device)
    ids, keep, segments = batch(device)
    order = torch.tensor([4, 0, 7, 2, 8, 1, 6, 3, 5])  # the factorisation order: position 4 first
    perm = permutation_masks(order)[1].expand(2, T, T).to(device)  # the query stream's mask
    targets = torch.tensor([6, 3, 5])  # the last three in the order, all real tokens in both rows
    mapping = torch.zeros(2, len(targets), T, device=device)
    mapping[:, torch.arange(len(targets)), targets] = 1.0
    with torch.no_grad():
        # HF's perm_mask is the opposite convention: 1 = may NOT attend.
        expected = hf(ids, attention_mask=keep.long(), token_type_ids=segments, perm_mask=(~perm).float(),
                      target_mapping=mapping, use_mems=False).logits
        got = model(ids, segments, attn_mask=keep, perm_mask=perm, target_mapping=mapping)
        content = model(ids, segments, attn_mask=keep, perm_mask=perm)
        expected_content = hf(ids, attention_mask=keep.long(), token_type_ids=segments,
                              perm_mask=(~perm).float(), use_mems=False).logits
    assert got.shape == (2, len(targets), 100)
    diff = max_diff(got, expected)
    content_diff = max_diff(content[keep], expected_content[keep])
    assert diff <= 1e-4, f"query stream: max |ours - HF| = {diff:.2e}"
    assert content_diff <= 1e-4, f"content stream with perm_mask: max |ours - HF| = {content_diff:.2e}"
    # The query stream must not see its own token: changing it leaves the target's logits alone.
    changed = ids.clone()
    changed[:, targets[0]] = (changed[:, targets[0]] + 1) % 100
    with torch.no_grad():
        again = model(changed, segments, attn_mask=keep, perm_mask=perm, target_mapping=mapping)
    assert torch.allclose(again[:, 0], got[:, 0], atol=1e-6), "the query stream peeked at its own token"
    assert not torch.allclose(again[:, 1:], got[:, 1:], atol=1e-6), "later targets should see that token"


def test_relative_shift_puts_distance_i_minus_j_in_column_j():
    b, h, t = 1, 2, 5
    x = torch.randn(b, h, t, 2 * t)
    shifted = relative_shift(x, t)
    i, j = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
    assert torch.equal(shifted, x[:, :, i, j + t - i])


def test_stream_masks_hide_padding_and_let_only_the_content_stream_see_itself():
    order = torch.tensor([2, 0, 1, 3])
    content, query = permutation_masks(order)
    ids = torch.zeros(1, 4, dtype=torch.long)
    keep = torch.tensor([[True, True, True, False]])
    got_content, got_query = XLNet.stream_masks(ids, keep, query[None])
    assert torch.equal(got_query[0, 0], query & keep[0])
    # A padding query still sees itself in the content stream (its output is never read).
    assert torch.equal(got_content[0, 0], (content & keep[0]) | torch.eye(4, dtype=torch.bool))


def test_bad_inputs_and_unsupported_options_raise_value_error():
    model = XLNet(XLNetConfig(vocab_size=20, embed_dim=16, num_layers=1, num_heads=2, hidden_dim=32)).eval()
    ids = torch.randint(0, 20, (1, 4))
    with pytest.raises(ValueError, match="perm_mask must be boolean"):
        model(ids, perm_mask=torch.zeros(1, 4, 4))  # HF's float convention
    with pytest.raises(ValueError, match="target_mapping"):
        model(ids, target_mapping=torch.zeros(1, 2, 5))
    for option, match in [(dict(attn_type="uni"), "attn_type"), (dict(mem_len=16), "mem_len"),
                          (dict(bi_data=True), "bi_data"), (dict(ff_activation="silu"), "ff_activation")]:
        with pytest.raises(ValueError, match=match):
            from_hf(hf_xlnet("cpu", **option))
