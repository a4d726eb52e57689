"""Pre-training objectives for encoders: what to hide, and what to predict.

Shape legend
    b  batch        t  tokens        v  vocab_size

* BERT masking (Devlin et al., 2019): choose 15% of the tokens; of those, 80% become
  ``[MASK]``, 10% a random token, 10% stay. Only chosen positions have a label, so the
  model must keep a good representation of *every* token (any could be a corrupted one),
  while ``[MASK]``, never seen at fine-tuning time, is not the only signal.
* RoBERTa dynamic masking (Liu et al., 2019): draw a fresh mask each time a sequence is
  used, instead of fixing a few masks once during preprocessing (``static_masking``).
* ELECTRA replaced-token detection (Clark et al., 2020): a small MLM *generator* fills
  the masked positions with plausible samples; a *discriminator* labels every token as
  original or replaced. All ``t`` positions give a training signal, not only 15% of them.
* XLNet permutation language modelling (Yang et al., 2019): predict tokens in a random
  factorisation order. Attention masks encode that order; a content stream may see its
  own token, a query stream (which must predict it) may not.

Labels use ``IGNORE_INDEX`` (-100) for "no loss here", the value ``F.cross_entropy`` skips.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import IGNORE_INDEX
from ..nn import causal_mask, padding_mask_from_ids


def bert_masking(
    ids: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    mask_prob: float = 0.15,
    special_ids: tuple[int, ...] | list[int] = (),
    replace_probs: tuple[float, float, float] = (0.8, 0.1, 0.1),
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's corruption of ``ids (b t)``; returns ``(inputs (b t), labels (b t))``.

    Each token not in ``special_ids`` is chosen with probability ``mask_prob``; a chosen
    token becomes ``[MASK]``, a uniformly random token, or stays, with ``replace_probs``.
    ``labels`` holds the original id at chosen positions and ``IGNORE_INDEX`` elsewhere.
    """
    if abs(sum(replace_probs) - 1.0) > 1e-6:
        raise ValueError(f"replace_probs must sum to 1, got {replace_probs}")
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must lie in [0, 1], got {mask_prob}")
    device = ids.device
    special = torch.tensor(list(special_ids), dtype=ids.dtype, device=device)

    def uniform() -> Tensor:  # drawn on the CPU so a CPU generator serves every device
        return torch.rand(ids.shape, generator=generator).to(device)

    chosen = (uniform() < mask_prob) & ~torch.isin(ids, special)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    which = uniform()
    to_mask = chosen & (which < replace_probs[0])
    to_random = chosen & (which >= replace_probs[0]) & (which < replace_probs[0] + replace_probs[1])
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator).to(device=device, dtype=ids.dtype)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


class DynamicMasking:
    """RoBERTa's dynamic masking: every call draws a new BERT mask for the batch.

    Use it as a ``collate_fn`` step: the same sentence gets a different mask each epoch.
    The keyword arguments are those of :func:`bert_masking`.
    """

    def __init__(self, *, mask_id: int, vocab_size: int, seed: int = 0, **kwargs):
        self.kwargs = dict(mask_id=mask_id, vocab_size=vocab_size, **kwargs)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        return bert_masking(ids, generator=self.generator, **self.kwargs)


def static_masking(ids: Tensor, num_copies: int = 10, seed: int = 0, **kwargs) -> list[tuple[Tensor, Tensor]]:
    """Original BERT preprocessing: ``num_copies`` fixed masks, reused epoch after epoch."""
    generator = torch.Generator().manual_seed(seed)
    return [bert_masking(ids, generator=generator, **kwargs) for _ in range(num_copies)]


@dataclass
class ElectraOutput:
    loss: Tensor  # mlm_loss + disc_weight * disc_loss
    mlm_loss: Tensor
    disc_loss: Tensor
    corrupted: Tensor  # (b t) ids the discriminator read
    is_replaced: Tensor  # (b t) bool targets of the discriminator
    disc_logits: Tensor  # (b t)


class Electra(nn.Module):
    """ELECTRA pre-training with a small generator and a discriminator (Clark et al., 2020).

    Args:
        generator: a masked LM, ``ids (b t) -> logits (b t v)`` (an ``EncoderForMaskedLM``).
        discriminator: ``ids (b t) -> logits (b t 1)`` (an ``EncoderForTokenClassification``
            with ``num_labels=1``).
        mask_id, pad_id: the ``[MASK]`` and padding ids; ``special_ids`` are never masked.
        disc_weight: lambda in ``loss = mlm + lambda * disc`` (50 in the paper).
        share_embeddings: tie the two token tables when their widths agree (the paper's choice).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, mask_id: int, pad_id: int,
                 vocab_size: int, mask_prob: float = 0.15, special_ids: tuple[int, ...] = (),
                 disc_weight: float = 50.0, share_embeddings: bool = True):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.mask_id, self.pad_id, self.vocab_size = mask_id, pad_id, vocab_size
        self.mask_prob, self.special_ids, self.disc_weight = mask_prob, tuple(special_ids), disc_weight
        gen_embed, disc_embed = generator.encoder.token_embed, discriminator.encoder.token_embed
        if share_embeddings and gen_embed.weight.shape == disc_embed.weight.shape:
            generator.encoder.token_embed = disc_embed

    def forward(self, ids: Tensor, sample_generator: torch.Generator | None = None) -> ElectraOutput:
        # ELECTRA masks with [MASK] only: the random/keep cases exist for BERT's fine-tuning mismatch.
        masked, labels = bert_masking(
            ids, mask_id=self.mask_id, vocab_size=self.vocab_size, mask_prob=self.mask_prob,
            special_ids=(*self.special_ids, self.pad_id), replace_probs=(1.0, 0.0, 0.0), generator=sample_generator,
        )
        gen_logits = self.generator(masked)  # b t v
        mlm_loss = F.cross_entropy(gen_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)
        chosen = labels != IGNORE_INDEX
        with torch.no_grad():  # sampling is not differentiable: no gradient flows generator <- discriminator
            probs = gen_logits[chosen].float().softmax(dim=-1)
            samples = torch.multinomial(probs.cpu(), 1, generator=sample_generator).squeeze(-1).to(ids.device)
        corrupted = ids.clone()
        corrupted[chosen] = samples.to(ids.dtype)
        # A sample that happens to equal the original counts as original (as in the paper).
        is_replaced = corrupted != ids
        disc_logits = self.discriminator(corrupted).squeeze(-1)  # b t
        real = ids != self.pad_id
        disc_loss = F.binary_cross_entropy_with_logits(disc_logits[real].float(), is_replaced[real].float())
        return ElectraOutput(mlm_loss + self.disc_weight * disc_loss, mlm_loss, disc_loss, corrupted,
                             is_replaced, disc_logits)


def permutation_masks(order: Tensor) -> tuple[Tensor, Tensor]:
    """XLNet's two attention masks for a factorisation order (Yang et al., 2019).

    Args:
        order: ``(t,)``, a permutation of ``0..t-1``; ``order[r]`` is the position
            predicted at step ``r``.

    Returns:
        ``(content_mask, query_mask)``, each ``(t, t)`` boolean, True = may attend, rows
        are query positions, columns key positions (sequence order, not factorisation order).
        Position ``i`` sees position ``j`` in the content stream when ``j`` comes no later
        than ``i`` in the order, and in the query stream only when strictly earlier: the
        query stream predicts token ``i``, so it must not see it.
    """
    t = order.numel()
    if order.dim() != 1 or not torch.equal(order.sort().values, torch.arange(t, device=order.device)):
        raise ValueError(f"order must be a permutation of 0..{t - 1}, got {order.tolist()}")
    rank = torch.empty_like(order)
    rank[order] = torch.arange(t, device=order.device)  # rank[i]: the step at which i is predicted
    in_order = causal_mask(t, device=order.device)  # causal in factorisation order
    content = in_order[rank[:, None], rank[None, :]]
    query = content & ~torch.eye(t, dtype=torch.bool, device=order.device)
    return content, query


def partial_prediction_targets(order: Tensor, num_predict: int) -> Tensor:
    """``(t,)`` bool: XLNet predicts only the last ``num_predict`` tokens of the order.

    Early tokens in the order have too little context to be worth predicting (the paper
    predicts about 1/6 of them, K = 6).
    """
    t = order.numel()
    targets = torch.zeros(t, dtype=torch.bool, device=order.device)
    targets[order[t - num_predict:]] = True
    return targets


def permutation_padding_masks(order: Tensor, ids: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """``permutation_masks`` combined with key padding: each ``(b, 1, t, t)``."""
    content, query = permutation_masks(order)
    keep = padding_mask_from_ids(ids, pad_id)  # b 1 1 t
    return content[None, None] & keep, query[None, None] & keep
