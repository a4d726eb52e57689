"""Noising functions for encoder-decoder pre-training: corrupt the input, ask for the original.

Shape legend
    t  tokens of one sequence (these functions work on one 1-D sequence at a time;
       the corrupted sequences have different lengths, so batching pads them later)

* T5 span corruption (Raffel et al., 2020): replace ~15% of the tokens, in spans of mean
  length 3, by sentinel tokens ``<X>, <Y>, ...``; the target lists each sentinel followed
  by the tokens it hid, and ends with one more sentinel.
* BART text infilling (Lewis et al., 2020): replace spans with Poisson(3) lengths,
  ~30% of the tokens in all, by a *single* ``<mask>`` each (a length-0 span inserts a
  ``<mask>``), so the model must also guess how many tokens are missing. The target is
  the whole original sequence.
* PEGASUS gap-sentence generation (Zhang et al., 2020): remove whole sentences, chosen
  as the most "principal" (highest ROUGE-1 F1 against the rest of the document), replace
  each by ``<mask_1>``, and generate them: pre-training that looks like summarisation.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor


def _segment_lengths(total: int, num_segments: int, generator: torch.Generator | None) -> list[int]:
    """Split ``total`` items into ``num_segments`` non-empty runs, uniformly at random."""
    if not 1 <= num_segments <= total:
        raise ValueError(f"cannot split {total} items into {num_segments} non-empty segments")
    cuts = (torch.randperm(total - 1, generator=generator)[: num_segments - 1] + 1).sort().values.tolist()
    bounds = [0, *cuts, total]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:])]


def span_corruption_mask(length: int, noise_density: float = 0.15, mean_span_length: float = 3.0,
                         generator: torch.Generator | None = None) -> Tensor:
    """``(length,)`` bool, True on the noised tokens: ``round(length * density)`` of them,
    in ``round(noise / mean_span_length)`` spans, with kept runs between them (T5's scheme)."""
    if length < 2:
        raise ValueError(f"need at least 2 tokens to corrupt a span, got length={length}")
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(min(round(num_noise / mean_span_length), num_noise, length - num_noise), 1)
    noise = _segment_lengths(num_noise, num_spans, generator)
    keep = _segment_lengths(length - num_noise, num_spans, generator)
    mask = []
    for k, n in zip(keep, noise):  # starts with kept tokens, as in T5
        mask += [False] * k + [True] * n
    return torch.tensor(mask)


def t5_span_corruption(ids: Tensor, sentinel_ids: list[int], noise_density: float = 0.15,
                       mean_span_length: float = 3.0, eos_id: int | None = None,
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``ids (t,)`` -> ``(inputs, targets)``.

    ``sentinel_ids[k]`` replaces the ``k``-th span in ``inputs``; ``targets`` is
    ``sentinel_0 span_0 sentinel_1 span_1 ... sentinel_last`` (then ``eos_id`` if given).
    T5 uses the last vocabulary ids as sentinels, ``<extra_id_0>`` being the largest.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be one sequence (t,), got {tuple(ids.shape)}")
    noise = span_corruption_mask(ids.numel(), noise_density, mean_span_length, generator).to(ids.device)
    starts = noise & ~torch.cat([noise.new_zeros(1), noise[:-1]])  # first token of each span
    num_spans = int(starts.sum())
    if num_spans + 1 > len(sentinel_ids):
        raise ValueError(f"{num_spans} spans need {num_spans + 1} sentinel ids, got {len(sentinel_ids)}")
    inputs, targets, span = [], [], -1
    for token, is_noise, is_start in zip(ids.tolist(), noise.tolist(), starts.tolist()):
        if is_start:
            span += 1
            inputs.append(sentinel_ids[span])
            targets.append(sentinel_ids[span])
        (targets if is_noise else inputs).append(token)
    targets.append(sentinel_ids[num_spans])
    if eos_id is not None:
        inputs.append(eos_id)
        targets.append(eos_id)
    return torch.tensor(inputs, dtype=ids.dtype), torch.tensor(targets, dtype=ids.dtype)


def bart_text_infilling(ids: Tensor, mask_id: int, mask_ratio: float = 0.3, poisson_lambda: float = 3.0,
                        generator: torch.Generator | None = None) -> Tensor:
    """``ids (t,)`` -> the noised input; the decoder's target is ``ids`` itself.

    Span lengths are drawn from Poisson(``poisson_lambda``) until they cover
    ``round(t * mask_ratio)`` tokens (the last one is cut to fit). Spans and the kept
    runs between them are arranged uniformly at random; each span becomes one ``mask_id``.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be one sequence (t,), got {tuple(ids.shape)}")
    t = ids.numel()
    budget = round(t * mask_ratio)
    rate = torch.tensor([poisson_lambda])
    lengths: list[int] = []
    while sum(lengths) < budget:
        lengths.append(min(int(torch.poisson(rate, generator=generator)), budget - sum(lengths)))
    num_kept = t - sum(lengths)
    # Place the spans among the kept tokens: choose which of the num_kept + m slots are spans.
    slots = num_kept + len(lengths)
    is_span = torch.zeros(slots, dtype=torch.bool)
    is_span[torch.randperm(slots, generator=generator)[: len(lengths)]] = True
    out, pos, span = [], 0, 0
    tokens = ids.tolist()
    for slot_is_span in is_span.tolist():
        if slot_is_span:
            out.append(mask_id)
            pos += lengths[span]
            span += 1
        else:
            out.append(tokens[pos])
            pos += 1
    return torch.tensor(out, dtype=ids.dtype, device=ids.device)


def _rouge1_f1(candidate: list[int], reference: list[int]) -> float:
    overlap = sum((Counter(candidate) & Counter(reference)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(candidate), overlap / len(reference)
    return 2 * precision * recall / (precision + recall)


def pegasus_gap_sentences(sentences: list[list[int]], mask_sentence_id: int, gap_ratio: float = 0.3,
                          strategy: str = "principal", generator: torch.Generator | None = None
                          ) -> tuple[list[int], list[int], list[int]]:
    """Gap-sentence generation on one document given as tokenised ``sentences``.

    Selects ``max(1, round(len(sentences) * gap_ratio))`` sentences by ``strategy``:
    ``"principal"`` (top ROUGE-1 F1 of each sentence against all the others, scored
    independently, PEGASUS's Ind-Orig), ``"random"`` or ``"lead"`` (the first ones).

    Returns ``(inputs, targets, selected)``: the document with each selected sentence
    replaced by ``mask_sentence_id``, the selected sentences concatenated in document
    order, and their indices.
    """
    n = len(sentences)
    if n == 0:
        raise ValueError("the document has no sentences")
    m = max(1, round(n * gap_ratio))
    if strategy == "principal":
        scores = []
        for i, sentence in enumerate(sentences):
            rest = [tok for j, other in enumerate(sentences) if j != i for tok in other]
            scores.append(_rouge1_f1(sentence, rest) if sentence and rest else 0.0)
        # Stable order on ties: the earlier sentence wins.
        selected = sorted(sorted(range(n), key=lambda i: -scores[i])[:m])
    elif strategy == "random":
        selected = sorted(torch.randperm(n, generator=generator)[:m].tolist())
    elif strategy == "lead":
        selected = list(range(m))
    else:
        raise ValueError(f"strategy must be 'principal', 'random' or 'lead', got {strategy!r}")
    chosen = set(selected)
    inputs = [tok for i, s in enumerate(sentences) for tok in ([mask_sentence_id] if i in chosen else s)]
    targets = [tok for i in selected for tok in sentences[i]]
    return inputs, targets, selected
