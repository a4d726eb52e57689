"""Find the submissions in a directory or an LMS zip, following nbgrader's conventions.

Two layouts are recognised, with nbgrader's own ``FileNameCollectorPlugin`` doing the
matching (its ``named_regexp`` with ``student_id``, ``file_id`` and optional ``timestamp``):

* nbgrader's ``submitted/`` layout: ``<student>/<assignment>/<notebook>.ipynb`` (with an
  optional ``timestamp.txt`` beside it);
* an LMS download (a zip, or the directory it unpacks to) of flat files named
  ``<student>_<timestamp>_<anything>.ipynb`` or ``<student>_<anything>.ipynb``.

Every file found becomes a :class:`Submission`; nothing is dropped silently. When a student
handed in more than once, the newest one is graded into the gradebook and the others are
marked ``superseded_by`` (they still get a score and feedback). Newest means the latest
submission time (from the file name, or ``timestamp.txt`` as nbgrader writes it), then, for
files without one, the latest modification time (a browser's ``name (1).ipynb`` sorts before
``name.ipynb`` but is the later download). The kept copy is written to
``<course root>/submitted/<student>/<assignment>/<notebook>.ipynb`` like ``nbgrader collect``.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.plugins.zipcollect import FileNameCollectorPlugin
from nbgrader.utils import parse_utc

NESTED = r"^(?P<student_id>[^/]+)/(?P<assignment_id>[^/]+)/(?P<file_id>[^/]+)$"
FLAT = (r"^(?:.*/)?(?P<student_id>[^_/]+)_(?:(?P<timestamp>\d{4}-?\d{2}-?\d{2}[T _-]?\d{2}[-:]?\d{2}"
        r"(?:[-:]?\d{2})?)_)?(?P<file_id>[^/]+)$")
MAX_BYTES = 64 << 20


@dataclass
class Submission:
    student: str
    origin: str  # where it came from, relative to the directory or zip
    data: bytes = field(repr=False)
    timestamp: datetime | None = None
    modified: float = 0.0  # the file's (or zip entry's) modification time: breaks ties between resubmissions
    superseded_by: str | None = None
    path: Path | None = None  # the collected copy that is graded

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def key(self) -> str:
        return f"{self.student}::{self.origin}"


@dataclass
class Collection:
    submissions: list[Submission]
    skipped: list[tuple[str, str]]  # (origin, why)


def _fix_zip_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800:  # not flagged UTF-8: many LMS zips are UTF-8 anyway
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return unicodedata.normalize("NFC", name)


def _entries(source: Path):
    """(relative name, bytes or None, why, modification time) for each candidate file."""
    if source.is_file():
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as err:
            raise ValueError(f"{source} is neither a directory nor a zip file ({err})") from None
        with archive:
            for info in archive.infolist():
                name = _fix_zip_name(info)
                if info.is_dir() or not name.endswith(".ipynb") or "__MACOSX" in name:
                    continue
                modified = datetime(*info.date_time, tzinfo=timezone.utc).timestamp()
                if name.startswith("/") or ".." in name.split("/"):
                    yield name, None, "unsafe path in the zip", modified
                elif info.file_size > MAX_BYTES:
                    yield name, None, f"larger than {MAX_BYTES >> 20} MB", modified
                else:
                    yield name, archive.read(info), None, modified
        return
    if not source.is_dir():
        raise ValueError(f"submissions not found: {source}")
    for path in sorted(source.rglob("*.ipynb")):
        rel = path.relative_to(source).as_posix()
        if ".ipynb_checkpoints" in rel or any(p.startswith(".") for p in rel.split("/")):
            continue
        stat, rel = path.stat(), unicodedata.normalize("NFC", rel)
        yield (rel, None, f"larger than {MAX_BYTES >> 20} MB", stat.st_mtime) if stat.st_size > MAX_BYTES \
            else (rel, path.read_bytes(), None, stat.st_mtime)


def _parse_time(text: str | None) -> datetime | None:
    digits = re.sub(r"\D", "", text or "")
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M"):
        try:
            return datetime.strptime(digits, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _read_timestamp(path: Path) -> datetime | None:
    """``timestamp.txt`` as ``nbgrader submit``/``collect`` write it ('2024-03-02 09:00:00.123456 UTC')."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        stamp = parse_utc(text)  # nbgrader's own parser: time zone names and offsets, fractions
    except (ValueError, OverflowError):
        return _parse_time(text)
    return stamp.replace(tzinfo=timezone.utc) if stamp else None


def _valid_student(name: str) -> bool:
    return bool(name.strip()) and name not in {".", ".."} and not re.search(r"[/\\\x00-\x1f]", name)


def find_submissions(source: Path, assignment: str, regexp: str | None = None) -> Collection:
    plugins = [FileNameCollectorPlugin(named_regexp=r) for r in ([regexp] if regexp else [NESTED, FLAT])]
    found, skipped = [], []
    nested_dir = Path(source).is_dir()
    for name, data, why, modified in _entries(Path(source)):
        if why:
            skipped.append((name, why))
            continue
        info = next((m for m in (p.collect(name) for p in plugins) if m), None)
        if info is None:
            skipped.append((name, "the file name does not say whose it is"))
            continue
        if info.get("assignment_id") not in (None, assignment):
            continue  # another assignment's folder in an nbgrader layout
        student = unicodedata.normalize("NFC", info["student_id"]).strip()
        if not _valid_student(student):
            skipped.append((name, f"invalid student id {student!r}"))
            continue
        stamp = _parse_time(info.get("timestamp"))
        if stamp is None and nested_dir and info.get("assignment_id"):
            stamp = _read_timestamp(Path(source) / Path(name).parent / "timestamp.txt")
        found.append(Submission(student, name, data, stamp, modified))
    _mark_superseded(found)
    return Collection(found, skipped)


def _mark_superseded(subs: list[Submission]) -> None:
    by_student: dict[str, list[Submission]] = {}
    for sub in subs:
        by_student.setdefault(sub.student, []).append(sub)
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    for group in by_student.values():
        group.sort(key=lambda s: (s.timestamp or oldest, s.modified, s.origin))
        for sub in group[:-1]:
            sub.superseded_by = group[-1].origin


def store(collection: Collection, course_root: Path, assignment: str, notebook: str, state_dir: Path) -> None:
    """Write each submission where it will be graded from (nbgrader's ``submitted/`` layout)."""
    for index, sub in enumerate(collection.submissions):
        if sub.superseded_by:
            target = state_dir / "superseded" / sub.student / f"{index:04d}-{notebook}.ipynb"
        else:
            target = Path(course_root) / "submitted" / sub.student / assignment / f"{notebook}.ipynb"
            if sub.timestamp:
                target.parent.mkdir(parents=True, exist_ok=True)
                (target.parent / "timestamp.txt").write_text(sub.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != sub.data:
            target.write_bytes(sub.data)
        sub.path = target
