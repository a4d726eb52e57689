"""Byte-level BPE training time: a 10k-token vocabulary from ~5 MB of English, on one core.

The text is the docstrings of Python's standard library, then of the installed
packages (read with ``ast``: nothing imported, nothing downloaded), in sorted file
order, cut at the target size. The trainer is pure Python and single-threaded;
the time is split into pre-tokenisation and merge learning.

    python benchmarks/bench_bpe.py [--megabytes 5] [--vocab-size 10000]   # prints seconds
    course bench bpe                                                       # writes results/bpe.*
"""
from __future__ import annotations

import argparse
import ast
import sysconfig
import time
from collections import Counter
from pathlib import Path

NAME = "bpe"
GOAL_SECONDS = 60.0  # issue 5: a 10k vocabulary on ~5 MB in under a minute on one core


def docstring_corpus(max_chars: int) -> str:
    """Docstrings of the stdlib, then of site-packages, until ``max_chars`` characters."""
    paths = sysconfig.get_paths()
    stdlib, purelib = Path(paths["stdlib"]), Path(paths["purelib"])
    docs, total = [], 0
    for root in (stdlib, purelib):
        for file in sorted(root.rglob("*.py")):
            if {"test", "tests"} & set(file.parts) or (root == stdlib and "site-packages" in file.parts):
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


def time_training(text: str, vocab_size: int) -> dict:
    """Seconds for each stage of ``ByteBPETokenizer.train`` and for the whole call."""
    from course_lib.tokenizers import ByteBPETokenizer, gpt2_pretokenize, train_bpe

    t0 = time.perf_counter()
    words = Counter(gpt2_pretokenize(text))
    word_counts = {w.encode("utf-8"): n for w, n in words.items()}
    t1 = time.perf_counter()
    merges, _ = train_bpe(word_counts, vocab_size)
    t2 = time.perf_counter()
    ByteBPETokenizer.train(text, vocab_size)
    t3 = time.perf_counter()
    return {
        "MB": round(len(text.encode("utf-8")) / 1e6, 2),
        "vocab_size": vocab_size,
        "distinct words": len(word_counts),
        "merges": len(merges),
        "pre-tokenise s": round(t1 - t0, 2),
        "merge s": round(t2 - t1, 2),
        "train() s": round(t3 - t2, 2),
    }


def run(quick: bool = False, device=None) -> dict:
    """Entry point for ``course bench``; the device is ignored (tokenizers run on the CPU)."""
    from course_lib.bench import environment

    megabytes = 1.0 if quick else 5.0
    row = time_training(docstring_corpus(int(megabytes * 1_000_000)), 10_000)
    verdict = "met" if row["train() s"] < GOAL_SECONDS else "missed"
    return {
        "title": f"Byte-level BPE training, pure Python, one core ({megabytes:g} MB, 10k vocabulary)",
        "environment": environment("cpu"),
        "rows": [row],
        "goals": [f"train() took {row['train() s']} s on {row['MB']} MB "
                  f"(goal: < {GOAL_SECONDS:g} s on ~5 MB): {verdict}"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--vocab-size", type=int, default=10_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    text = docstring_corpus(int(args.megabytes * 1_000_000))
    print(f"corpus: {len(text.encode('utf-8')) / 1e6:.2f} MB, gathered in {time.perf_counter() - t0:.1f} s")
    for key, value in time_training(text, args.vocab_size).items():
        print(f"{key:>15}: {value}")


if __name__ == "__main__":
    main()
