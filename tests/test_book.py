"""The book builds from scratch, every page executed, and shows its figures."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def toc_files() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_every_toc_entry_exists():
    for name in toc_files():
        assert (BOOK / f"{name}.md").exists(), f"_toc.yml names {name}, but book/{name}.md is missing"


def test_execution_errors_fail_the_build():
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert config["execute"]["allow_errors"] is False


@pytest.mark.slow
def test_book_builds(tmp_path):
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run(
        [str(jb), "build", str(BOOK), "--path-output", str(tmp_path), "--keep-going", "-W"],
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, f"the book failed to build:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists()
    for name in toc_files():
        page = (html / f"{name}.html").read_text()
        assert "Traceback" not in page, f"{name} shows a traceback"
    attention = (html / "attention.html").read_text()
    assert attention.count("<img alt=") >= 3, "the self-attention page must show its figures"
    text = re.sub(r"<[^>]+>", "", attention)
    assert "def naive_attention(" in text, "the page must include the library's code"
