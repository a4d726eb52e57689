"""What has been graded already, so that a re-run resumes instead of starting over.

One JSON file per assignment, ``<course root>/.grading/<assignment>/state.json``, maps
each submission's key to the SHA-256 of its bytes, the hash of the assignment source it
was graded against, and its result. An entry is written only after the result is in the
gradebook and the feedback is on disk, and the file is replaced atomically, so a run that
is killed at any point loses nothing: what was not recorded is simply graded again.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def tree_hash(path: Path) -> str:
    """Hash of every file under ``path`` (names and bytes), to notice a changed assignment."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


class GradingState:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))["submissions"]
            except (ValueError, KeyError):
                # A damaged state file only costs time: everything is graded again.
                self.path.rename(self.path.with_suffix(".damaged"))

    def is_done(self, key: str, sha256: str, source_hash: str) -> bool:
        entry = self.entries.get(key)
        return bool(entry) and entry["sha256"] == sha256 and entry["source_hash"] == source_hash

    def result(self, key: str) -> dict | None:
        entry = self.entries.get(key)
        return entry["result"] if entry else None

    def record(self, key: str, sha256: str, source_hash: str, result: dict, save: bool = True) -> None:
        self.entries[key] = {"sha256": sha256, "source_hash": source_hash, "result": result}
        if save:
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"submissions": self.entries}, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)
