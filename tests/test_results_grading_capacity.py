"""The README's sizing figures are those of the capacity benchmark's result file.

``benchmarks/bench_grading_capacity.py`` writes ``benchmarks/results/grading_capacity.json``;
the README's "Running a class" section quotes the sentences that the benchmark makes from it
(:func:`sizing_lines`). When the benchmark is run again, the README must follow.
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "grading_capacity.json"


def _bench():
    from benchmarks import bench_grading_capacity

    return bench_grading_capacity


def _words(text: str) -> str:
    return " ".join(text.split())  # the README wraps lines


def test_capacity_follows_from_the_measured_memory():
    bench, result = _bench(), json.loads(RESULT.read_text())
    cap = result["capacity"]
    assert bench.capacity(result["learner"], cap["total_bytes"], cap["headroom"]) == cap
    assert cap["learners_shared"] >= cap["learners_conservative"] > 0


def test_readme_quotes_the_benchmark():
    bench, result = _bench(), json.loads(RESULT.read_text())
    readme = _words((REPO / "README.md").read_text(encoding="utf-8"))
    for line in bench.sizing_lines(result):
        assert _words(line) in readme, line
    runs = {r["run"] for r in result["grading"]}
    assert len(runs) == 3 and all(r["notebooks"] == result["grading"][0]["notebooks"] for r in result["grading"])
