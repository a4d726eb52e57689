"""Training byte-level BPE: learn merges from a table of pre-token "words" and their counts.

Start from the 256 single bytes; repeatedly find the most frequent adjacent pair
of tokens, give it a new id and replace it everywhere. Ties between equally
frequent pairs go to the lexicographically greater pair, comparing
``(bytes of left token, bytes of right token)``; this makes training
deterministic and independent of dictionary order.

Two trainers produce the *same* merges:

- ``train_bpe_naive`` recounts every pair after every merge: a few lines, O(merges x corpus).
- ``train_bpe`` keeps the pair counts up to date. A merge only touches the words
  that contain the merged pair (``where`` says which), so each step costs the size
  of those words, not of the corpus. A heap finds the best pair; entries whose
  count went stale are skipped when popped ("lazy deletion").

A merge whose bytes already exist as a token (``"ab"+"c"`` after ``"a"+"bc"``)
reuses that token's id, as Hugging Face ``tokenizers`` does, so no two ids share
the same bytes; ``vocab_size`` counts distinct tokens.

Reference: Sennrich et al., "Neural Machine Translation of Rare Words with Subword Units" (2016).
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Mapping

Pair = tuple[int, int]


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace each non-overlapping occurrence of ``pair``, left to right, by ``new_id``.

    >>> merge_pair([1, 1, 1, 2], (1, 1), 9)
    [9, 1, 2]
    """
    out, i, n = [], 0, len(ids)
    first, second = pair
    while i < n:
        if ids[i] == first and i + 1 < n and ids[i + 1] == second:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _check(word_counts: Mapping[bytes, int], vocab_size: int) -> None:
    if not isinstance(vocab_size, int) or vocab_size < 256:
        raise ValueError(f"vocab_size must be an int >= 256 (one id per byte), got {vocab_size!r}")
    if not word_counts:
        raise ValueError("cannot train BPE on an empty corpus (no words)")


class _Vocab:
    """id -> bytes, plus the reverse map used to reuse the id of an existing token."""

    def __init__(self):
        self.tokens = {i: bytes([i]) for i in range(256)}
        self.ids = {tok: i for i, tok in self.tokens.items()}

    def add(self, pair: Pair) -> int:
        token = self.tokens[pair[0]] + self.tokens[pair[1]]
        if token not in self.ids:
            self.ids[token] = len(self.tokens)
            self.tokens[self.ids[token]] = token
        return self.ids[token]


def train_bpe_naive(word_counts: Mapping[bytes, int], vocab_size: int) -> tuple[dict[Pair, int], dict[int, bytes]]:
    """Reference trainer. Returns ``(merges, vocab)``: ``{(left, right): new_id}`` in merge order, ``{id: bytes}``."""
    _check(word_counts, vocab_size)
    vocab, merges = _Vocab(), {}
    words, counts = [list(w) for w in word_counts], list(word_counts.values())
    while len(vocab.tokens) < vocab_size:
        stats = Counter()
        for word, count in zip(words, counts):
            for pair in zip(word, word[1:]):
                stats[pair] += count
        if not stats:  # every word is a single token: nothing left to merge
            break
        tok = vocab.tokens
        best = max(stats, key=lambda p: (stats[p], tok[p[0]], tok[p[1]]))
        merges[best] = vocab.add(best)
        words = [merge_pair(w, best, merges[best]) for w in words]
    return merges, vocab.tokens


def _heap_key(token: bytes) -> tuple[int, ...]:
    """Sort key under which a *smaller* key means lexicographically *greater* bytes.

    heapq pops the minimum, but ties must go to the greater pair. Flipping each
    byte (255 - b) reverses the order; the 256 terminator makes a prefix sort
    after its extensions ("ab" beats "a"), as it should when reversed.
    """
    return tuple(255 - b for b in token) + (256,)


def train_bpe(word_counts: Mapping[bytes, int], vocab_size: int) -> tuple[dict[Pair, int], dict[int, bytes]]:
    """Fast trainer with incremental pair counts; same result as ``train_bpe_naive``.

    Args:
        word_counts: ``{pre-token as UTF-8 bytes: number of occurrences}``.
        vocab_size: target number of distinct tokens, >= 256. Training stops early
            if no pair is left to merge.
    Returns:
        ``(merges, vocab)``: ``{(left_id, right_id): new_id}`` in merge order, ``{id: bytes}``.
    """
    _check(word_counts, vocab_size)
    vocab, merges = _Vocab(), {}
    words, counts = [list(w) for w in word_counts], list(word_counts.values())

    stats: dict[Pair, int] = defaultdict(int)  # pair -> total count over the corpus
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words that (may) contain it
    for wi, word in enumerate(words):
        for pair in zip(word, word[1:]):
            stats[pair] += counts[wi]
            where[pair].add(wi)
    key = {i: _heap_key(t) for i, t in vocab.tokens.items()}
    heap = [(-n, key[a], key[b], (a, b)) for (a, b), n in stats.items()]
    heapq.heapify(heap)

    while len(vocab.tokens) < vocab_size and heap:
        neg_count, _, _, pair = heapq.heappop(heap)
        if stats.get(pair) != -neg_count:  # stale entry: the count changed after it was pushed
            continue
        new_id = vocab.add(pair)
        merges[pair] = new_id
        key.setdefault(new_id, _heap_key(vocab.tokens[new_id]))

        # Each affected word gives back all its old pairs and takes all its new ones;
        # summing the differences first means one heap push per changed pair.
        delta: dict[Pair, int] = defaultdict(int)
        for wi in where.pop(pair):
            word = words[wi]
            new_word = merge_pair(word, pair, new_id)
            if len(new_word) == len(word):  # an earlier merge already removed the pair here
                continue
            count = counts[wi]
            for p in zip(word, word[1:]):
                delta[p] -= count
            for p in zip(new_word, new_word[1:]):
                delta[p] += count
                where[p].add(wi)
            words[wi] = new_word

        for p, d in delta.items():
            if d == 0:
                continue
            n = stats[p] + d
            if n > 0:
                stats[p] = n
                heapq.heappush(heap, (-n, key[p[0]], key[p[1]], p))
            else:
                del stats[p]
                where.pop(p, None)
    return merges, vocab.tokens
