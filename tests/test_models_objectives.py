"""Encoder pre-training objectives: BERT masking, dynamic masking, ELECTRA, XLNet permutation masks."""
from __future__ import annotations

import pytest
import torch

from course_lib.models import EncoderConfig, EncoderForMaskedLM, EncoderForTokenClassification
from course_lib.constants import IGNORE_INDEX
from course_lib.models.objectives import (
    DynamicMasking,
    Electra,
    bert_masking,
    partial_prediction_targets,
    permutation_masks,
    permutation_padding_masks,
    static_masking,
)
from course_lib.nn import scaled_dot_product_attention
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)

MASK, CLS, SEP, PAD, VOCAB = 3, 1, 2, 0, 1000


def test_bert_masking_rates_follow_80_10_10(device):
    ids = torch.randint(10, VOCAB, (64, 256), device=device)
    ids[:, 0], ids[:, -1] = CLS, SEP
    inputs, labels = bert_masking(ids, mask_id=MASK, vocab_size=VOCAB, special_ids=(CLS, SEP, PAD),
                                  generator=torch.Generator().manual_seed(0))
    chosen = labels != IGNORE_INDEX
    n = chosen.sum().item()
    assert abs(n / (64 * 254) - 0.15) < 0.01  # special tokens are never chosen
    assert not chosen[:, 0].any() and not chosen[:, -1].any()
    assert torch.equal(labels[chosen], ids[chosen])
    masked = (inputs == MASK) & chosen
    kept = (inputs == ids) & chosen
    random = chosen & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.03
    # A random replacement can by chance equal the original (1 / VOCAB): it then counts as kept.
    assert abs(kept.sum().item() / n - 0.1) < 0.02 and abs(random.sum().item() / n - 0.1) < 0.02
    assert torch.equal(inputs[~chosen], ids[~chosen]), "tokens that were not chosen must not change"


def test_dynamic_masking_draws_a_new_mask_each_time_static_does_not():
    ids = torch.randint(10, VOCAB, (4, 64))
    dynamic = DynamicMasking(mask_id=MASK, vocab_size=VOCAB, seed=0)
    first, second = dynamic(ids), dynamic(ids)
    assert not torch.equal(first[1], second[1]), "each epoch should see a different mask"
    copies = static_masking(ids, num_copies=3, mask_id=MASK, vocab_size=VOCAB)
    again = static_masking(ids, num_copies=3, mask_id=MASK, vocab_size=VOCAB)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(copies, again)), "static masks are fixed once"
    with pytest.raises(ValueError, match="replace_probs"):
        bert_masking(ids, mask_id=MASK, vocab_size=VOCAB, replace_probs=(0.5, 0.1, 0.1))


def small_encoder(head, embed_dim, **kw):
    config = EncoderConfig(vocab_size=30, embed_dim=embed_dim, num_layers=1, num_heads=2, hidden_dim=2 * embed_dim,
                           max_len=16, dropout=0.0, **kw)
    return head(config)


def test_electra_labels_and_gradients():
    torch.manual_seed(0)
    generator = small_encoder(EncoderForMaskedLM, 16)
    discriminator = small_encoder(EncoderForTokenClassification, 16, num_labels=1, classifier_dropout=0.0)
    electra = Electra(generator, discriminator, mask_id=MASK, pad_id=PAD, vocab_size=30, mask_prob=0.3,
                      special_ids=(CLS, SEP))
    assert generator.encoder.token_embed is discriminator.encoder.token_embed, "same width: tables are shared"
    ids = torch.randint(4, 30, (8, 12))
    ids[:, 9:] = PAD
    out = electra(ids, sample_generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.is_replaced, out.corrupted != ids)
    assert not out.is_replaced[:, 9:].any(), "padding is never replaced"
    assert out.is_replaced.any()
    assert out.disc_logits.shape == ids.shape
    torch.testing.assert_close(out.loss, out.mlm_loss + 50.0 * out.disc_loss)
    out.loss.backward()
    assert generator.mlm_head.dense.weight.grad.abs().sum() > 0
    assert discriminator.classifier.weight.grad.abs().sum() > 0


def test_electra_does_not_share_tables_of_different_width():
    generator = small_encoder(EncoderForMaskedLM, 8)
    discriminator = small_encoder(EncoderForTokenClassification, 16, num_labels=1)
    Electra(generator, discriminator, mask_id=MASK, pad_id=PAD, vocab_size=30)
    assert generator.encoder.token_embed is not discriminator.encoder.token_embed


def test_permutation_masks_on_a_small_example():
    order = torch.tensor([2, 0, 3, 1])  # predict position 2 first, then 0, 3, 1
    content, query = permutation_masks(order)
    # Position 0 comes second: its content stream sees positions 2 and 0, its query stream only 2.
    assert content[0].tolist() == [True, False, True, False]
    assert query[0].tolist() == [False, False, True, False]
    # The first position in the order sees nothing through the query stream; the last sees all others.
    assert not query[2].any() and query[1].tolist() == [True, False, True, True]
    assert torch.equal(content, query | torch.eye(4, dtype=torch.bool))
    assert partial_prediction_targets(order, 2).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="permutation"):
        permutation_masks(torch.tensor([0, 0, 1]))


def test_query_stream_never_sees_the_token_it_predicts_or_later_ones():
    torch.manual_seed(0)
    t, d = 6, 8
    order = torch.randperm(t)
    content_mask, query_mask = permutation_masks(order)
    content = torch.randn(1, 1, t, d)  # token contents (one head)
    query = torch.randn(1, 1, 1, d).expand(1, 1, t, d)  # the query stream starts from a shared vector
    out = scaled_dot_product_attention(query, content, content, attn_mask=query_mask)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(t)
    for i in range(t):
        # Change every token at or after i in the order: i's query-stream output must not move.
        changed = content.clone()
        changed[..., rank >= rank[i], :] += torch.randn(int((rank >= rank[i]).sum()), d)
        out2 = scaled_dot_product_attention(query, changed, changed, attn_mask=query_mask)
        torch.testing.assert_close(out2[..., i, :], out[..., i, :])
    # The content stream, in contrast, does see its own token.
    first = int(order[0])  # sees only itself in the content stream
    changed = content.clone()
    changed[..., first, :] += 1.0
    before = scaled_dot_product_attention(content, content, content, attn_mask=content_mask)
    after = scaled_dot_product_attention(changed, changed, changed, attn_mask=content_mask)
    torch.testing.assert_close(after[..., first, :], changed[..., first, :])
    assert not torch.allclose(after[..., first, :], before[..., first, :])


def test_permutation_padding_masks_hide_padding():
    order = torch.tensor([1, 0, 2])
    ids = torch.tensor([[5, 6, PAD]])
    content, query = permutation_padding_masks(order, ids, PAD)
    assert content.shape == (1, 1, 3, 3)
    assert not content[..., 2].any() and not query[..., 2].any()
