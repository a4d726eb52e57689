"""GPT-2 pre-tokenisation: cut text into "words" before byte-level BPE sees it.

BPE merges never cross a pre-token boundary, so " dog", " dog." and "dog!" share
the token " dog" instead of learning " dog." and "dog!" as separate tokens.
GPT-2 writes the rule with Unicode properties (``\\p{L}`` letter, ``\\p{N}`` number),
which the third-party ``regex`` module understands and Python's ``re`` does not:

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

Rather than add a dependency we spell the three classes out for ``re``:

- letters ``\\p{L}``: every code point whose general category starts with "L";
- numbers ``\\p{N}``: every code point whose general category starts with "N";
- white space ``\\s``: the 25 code points with the Unicode White_Space property.
  Python's own ``\\s`` is *not* that set: it also matches U+001C..U+001F, which the
  ``regex`` module and Hugging Face ``tokenizers`` treat as punctuation.

The categories come from ``unicodedata`` (the Unicode version of this Python), so
the only possible disagreement with another engine is on characters assigned in a
newer Unicode version than one of them knows.

Reference: Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), sec. 2.2.
"""
from __future__ import annotations

import functools
import re
import sys
import unicodedata

# The pattern as GPT-2 wrote it (for the ``regex`` module and for documentation).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Unicode White_Space (PropList.txt); unchanged since Unicode 6.3.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _class_body(code_points: list[int]) -> str:
    """Turn sorted code points into the inside of a ``[...]`` class, as ranges."""
    parts = []
    start = prev = code_points[0]
    for cp in code_points[1:] + [-1]:
        if cp == prev + 1:
            prev = cp
            continue
        parts.append(f"\\U{start:08x}" if start == prev else f"\\U{start:08x}-\\U{prev:08x}")
        start = prev = cp
    return "".join(parts)


@functools.cache
def gpt2_regex() -> re.Pattern:
    """The GPT-2 pattern compiled for the standard ``re`` module (built once, ~0.3 s)."""
    letters, numbers = [], []
    for cp in range(sys.maxunicode + 1):
        major = unicodedata.category(chr(cp))[0]
        if major == "L":
            letters.append(cp)
        elif major == "N":
            numbers.append(cp)
    L, N = _class_body(letters), _class_body(numbers)
    S = _class_body(sorted(map(ord, WHITESPACE)))
    pattern = (
        r"'s|'t|'re|'ve|'m|'ll|'d"
        rf"| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+"
        rf"|[{S}]+(?![^{S}])|[{S}]+"
    )
    return re.compile(pattern)


def gpt2_pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2 pre-tokens; ``"".join(result) == text`` always holds.

    >>> gpt2_pretokenize("Hello  world's 42!")
    ['Hello', ' ', ' world', "'s", ' 42', '!']
    """
    return gpt2_regex().findall(text)
