"""Benchmark: train a 10k-token byte-level BPE on ~5 MB of English text, on one core.

The text is the docstrings of Python's standard library plus those of the installed
packages (read with ``ast``, nothing imported, nothing downloaded), in sorted file
order, cut at ``--megabytes``. Prints the corpus size, pre-tokenisation and merge
times, and the first and last merges.

    python benchmarks/bench_bpe.py [--megabytes 5] [--vocab-size 10000]
"""
from __future__ import annotations

import argparse
import ast
import sysconfig
import time
from collections import Counter
from pathlib import Path

from course_lib.tokenizers import ByteBPETokenizer, gpt2_pretokenize, train_bpe


def docstring_corpus(max_chars: int) -> str:
    """Docstrings of the stdlib, then of site-packages, until ``max_chars`` characters."""
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"])]
    docs, total = [], 0
    for root in roots:
        for file in sorted(root.rglob("*.py")):
            if "test" in file.parts or "tests" in file.parts or (root == roots[0] and "site-packages" in file.parts):
                continue
            try:
                tree = ast.parse(file.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        docs.append(doc)
                        total += len(doc) + 2
                        if total >= max_chars:
                            return "\n\n".join(docs)[:max_chars]
    return "\n\n".join(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--vocab-size", type=int, default=10_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    text = docstring_corpus(int(args.megabytes * 1_000_000))
    t1 = time.perf_counter()
    print(f"corpus: {len(text.encode('utf-8')) / 1e6:.2f} MB UTF-8 ({len(text):,} chars), gathered in {t1 - t0:.1f} s")

    # Time the two stages separately, then the public entry point end to end.
    t0 = time.perf_counter()
    words = Counter(gpt2_pretokenize(text))
    word_counts = {w.encode("utf-8"): n for w, n in words.items()}
    t1 = time.perf_counter()
    merges, vocab = train_bpe(word_counts, args.vocab_size)
    t2 = time.perf_counter()
    print(f"pre-tokenise: {t1 - t0:.2f} s ({len(word_counts):,} distinct words)")
    print(f"merges:       {t2 - t1:.2f} s ({len(merges):,} merges, vocab {len(vocab):,})")

    t0 = time.perf_counter()
    tok = ByteBPETokenizer.train(text, args.vocab_size)
    seconds = time.perf_counter() - t0
    print(f"ByteBPETokenizer.train(~{args.megabytes:g} MB, vocab_size={args.vocab_size}): {seconds:.2f} s")
    firsts = [tok.vocab[i] for i in list(tok.merges.values())[:5]]
    lasts = [tok.vocab[i] for i in list(tok.merges.values())[-5:]]
    print(f"first merges: {firsts}\nlast merges:  {lasts}")


if __name__ == "__main__":
    main()
