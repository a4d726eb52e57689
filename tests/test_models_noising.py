"""Encoder-decoder noising: T5 span corruption, BART text infilling, PEGASUS gap sentences."""
from __future__ import annotations

import pytest
import torch

from course_lib.models.noising import (
    bart_text_infilling,
    pegasus_gap_sentences,
    span_corruption_mask,
    t5_span_corruption,
)

SENTINELS = list(range(999, 979, -1))  # <extra_id_0> = 999, <extra_id_1> = 998, ...


def uncorrupt(inputs, targets):
    """Put each span of ``targets`` back in place of its sentinel in ``inputs``."""
    spans, current = {}, None
    for tok in targets:
        if tok in SENTINELS:
            current = tok
            spans[current] = []
        else:
            spans[current].append(tok)
    out = []
    for tok in inputs:
        out.extend(spans[tok] if tok in SENTINELS else [tok])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_t5_span_corruption_is_invertible_and_hides_15_percent(seed):
    ids = torch.randint(0, 900, (100,))
    g = torch.Generator().manual_seed(seed)
    inputs, targets = t5_span_corruption(ids, SENTINELS, generator=g)
    assert uncorrupt(inputs.tolist(), targets.tolist()) == ids.tolist()
    noise = [t for t in targets.tolist() if t not in SENTINELS]
    assert len(noise) == 15
    used = [t for t in inputs.tolist() if t in SENTINELS]
    assert used == SENTINELS[: len(used)], "sentinels are used in order, one per span"
    assert targets.tolist()[-1] == SENTINELS[len(used)], "targets end with one more sentinel"
    assert len(used) == 5  # round(15 / mean span length 3)


def test_span_mask_counts_and_sentinel_shortage():
    mask = span_corruption_mask(11, noise_density=0.3, mean_span_length=1.5, generator=torch.Generator().manual_seed(0))
    assert mask.sum() == 3 and not mask[0]  # T5 starts with a kept run
    with pytest.raises(ValueError, match="sentinel"):
        t5_span_corruption(torch.arange(100), SENTINELS[:2])


@pytest.mark.parametrize("seed", range(5))
def test_bart_text_infilling(seed):
    ids = torch.arange(10, 110)  # distinct tokens, so kept runs can be located
    noised = bart_text_infilling(ids, mask_id=0, generator=torch.Generator().manual_seed(seed)).tolist()
    kept = [t for t in noised if t != 0]
    assert kept == sorted(kept), "kept tokens stay in their original order"
    assert len(kept) == 70, "30% of the tokens are masked"
    # One <mask> per span: Poisson(3) spans cover 30 tokens in about 10 spans, not 30 masks.
    assert 3 <= noised.count(0) <= 20


def test_bart_text_infilling_can_insert_masks():
    # lambda -> 0 makes most spans empty: masks are inserted without hiding tokens.
    ids = torch.arange(10, 30)
    noised = bart_text_infilling(ids, mask_id=0, mask_ratio=0.1, poisson_lambda=0.05,
                                 generator=torch.Generator().manual_seed(0)).tolist()
    assert noised.count(0) > 2
    assert len([t for t in noised if t != 0]) == 18


def test_pegasus_picks_the_principal_sentence():
    doc = [
        [1, 2, 3],  # shares nothing
        [10, 11, 12, 13],  # the summary-like sentence: its words recur everywhere
        [10, 11, 20],
        [12, 13, 21],
        [4, 5, 6],
    ]
    inputs, targets, selected = pegasus_gap_sentences(doc, mask_sentence_id=99, gap_ratio=0.2)
    assert selected == [1]
    assert targets == [10, 11, 12, 13]
    assert inputs == [1, 2, 3, 99, 10, 11, 20, 12, 13, 21, 4, 5, 6]
    _, _, lead = pegasus_gap_sentences(doc, 99, gap_ratio=0.4, strategy="lead")
    assert lead == [0, 1]
    _, _, random = pegasus_gap_sentences(doc, 99, gap_ratio=0.4, strategy="random",
                                         generator=torch.Generator().manual_seed(0))
    assert len(random) == 2 and random == sorted(random)
    with pytest.raises(ValueError, match="strategy"):
        pegasus_gap_sentences(doc, 99, strategy="best")
