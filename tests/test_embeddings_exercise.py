"""The BPE + embedding assignment graded end to end: typical mistakes lose exactly the points of
the parts they break, a shortcut through F.embedding is caught under another name, and other
correct implementations (another way to apply merges, a one-hot embedding) get full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

# --- Typical mistakes -------------------------------------------------------------------

# Counts each word once, whatever its frequency.
UNWEIGHTED_COUNTS = """
    totals = {}
    for word in words:
        for pair in zip(word, word[1:]):
            totals[pair] = totals.get(pair, 0) + 1
    return totals
"""

# Breaks ties on the concatenated bytes: a different rule from the course's.
CONCATENATED_TIE = """
    return max(pair_counts, key=lambda pair: (pair_counts[pair], vocab[pair[0]] + vocab[pair[1]]))
"""

# Applies the merges to the raw bytes of the whole text, across word boundaries.
NO_PRETOKENIZATION = """
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = merge(ids, pair, new_id)
    return ids
"""

# The forbidden lookup, imported under another name: right numbers, caught at run time.
ALIASED_EMBEDDING = """
    from torch.nn.functional import embedding as lookup
    return lookup(ids, self.weight)
"""
ATEN_EMBEDDING = """
    return torch.ops.aten.embedding(self.weight, ids)
"""
EMBEDDING_INIT = """
    self.weight = nn.Parameter(torch.randn(vocab_size, embed_dim))
"""

# --- Correct alternatives ---------------------------------------------------------------

COUNTER_PAIRS = """
    from collections import Counter
    totals = Counter()
    for word, count in zip(words, counts):
        for i in range(len(word) - 1):
            totals[word[i], word[i + 1]] += count
    return dict(totals)
"""
SORTED_BEST = """
    ranked = sorted(pair_counts.items(), key=lambda item: (item[1], vocab[item[0][0]], vocab[item[0][1]]), reverse=True)
    return ranked[0][0]
"""
SLICING_MERGE = """
    out = list(ids)
    i = 0
    while i < len(out) - 1:
        if out[i] == pair[0] and out[i + 1] == pair[1]:
            out[i : i + 2] = [new_id]
        i += 1
    return out
"""
# "Apply the merges in the order they were learned", one pass per merge over each word.
MERGES_IN_ORDER = """
    ids = []
    for piece in gpt2_pretokenize(text):
        word = list(piece.encode("utf-8"))
        for pair, new_id in merges.items():
            word = merge(word, pair, new_id)
        ids += word
    return ids
"""
ONE_HOT_INIT = """
    self.weight = nn.Parameter(torch.empty(vocab_size, embed_dim))
    nn.init.normal_(self.weight)
"""
ONE_HOT_FORWARD = """
    one_hot = F.one_hot(ids, num_classes=self.weight.shape[0]).to(self.weight.dtype)
    return one_hot @ self.weight
"""


def test_embeddings_mistakes_and_alternatives(tmp_path):
    # Slips in parts whose tests do not call each other's answers share a notebook (each notebook
    # costs seconds of kernel start): the parts are graded apart, so each still loses exactly its cells.
    # encode calls the learner's merge only, which no slip touches.
    submissions = {
        "unweighted_counts+no_pretokenization+aliased_embedding": {
            "count_pairs": [UNWEIGHTED_COUNTS], "encode": [NO_PRETOKENIZATION],
            "embedding": [EMBEDDING_INIT, ALIASED_EMBEDDING]},
        "concatenated_tie+aten_embedding": {"best_pair": [CONCATENATED_TIE],
                                            "embedding": [EMBEDDING_INIT, ATEN_EMBEDDING]},
        "alternative": {"count_pairs": [COUNTER_PAIRS],
                        "best_pair": [SORTED_BEST],
                        "merge": [SLICING_MERGE],
                        "encode": [MERGES_IN_ORDER],
                        "embedding": [ONE_HOT_INIT, ONE_HOT_FORWARD]},
    }
    graded = grade_variants("embeddings", submissions, tmp_path)

    points, total, without = graded.points, graded.total, graded.without

    expected = {
        "alternative": total,
        # Both count cells and both encode cells fail. The aliased lookup gives the same numbers
        # as the solution, so its visible test passes; the grader sees the lookup called at run
        # time and the part is flagged (0 points).
        "unweighted_counts+no_pretokenization+aliased_embedding": without(
            "test_count_pairs_visible", "test_count_pairs_hidden", "test_encode_visible", "test_encode_hidden",
            "test_embedding_visible", "test_embedding_hidden"),
        # The visible test holds the (b"ab", b"c") vs (b"a", b"bd") case; aten's lookup is flagged.
        "concatenated_tie+aten_embedding": without("test_best_pair_visible", "test_best_pair_hidden",
                                                   "test_embedding_visible", "test_embedding_hidden"),
    }
    assert (0 < expected["unweighted_counts+no_pretokenization+aliased_embedding"]
            < expected["concatenated_tie+aten_embedding"] < total)
    graded.check(expected, flagged={"unweighted_counts+no_pretokenization+aliased_embedding": ["embedding"],
                                    "concatenated_tie+aten_embedding": ["embedding"]})
