"""Every benchmark result is shown in the book: a result file that no page reads is a finding
that readers never see (those that miss what they aimed for included)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_result_file_is_read_by_name_on_a_page():
    pages = "\n".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    quoted = set(re.findall(r"""["']([a-z0-9_]+)(?:\.json)?["']""", pages))
    results = sorted(p.stem for p in (ROOT / "benchmarks" / "results").glob("*.json"))
    assert results, "benchmarks/results/ holds no result files"
    missing = [name for name in results if name not in quoted]
    assert not missing, f"no book page reads these results by name: {missing}"
