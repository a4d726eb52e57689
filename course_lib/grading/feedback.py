"""Learner feedback built from a result, never from the graded notebook.

nbgrader's own feedback is the executed notebook rendered to HTML, hidden tests included.
Here the page is built from the result alone: each test's name, points, pass or fail and
its (already sanitised) message, plus why a part was zeroed and what was repaired. There
is no code on the page, so there is no hidden-test source to leak.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from .late import describe

STYLE = ("body{font-family:sans-serif;max-width:52rem;margin:2rem auto;line-height:1.4}"
         "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}"
         ".pass{color:#176917}.fail{color:#a31515}.flag{background:#fff4e5;border:1px solid #f0a020;padding:.5rem}")


def render_html(result: dict, student: str, assignment: str, origin: str) -> str:
    rows = []
    for test in result.get("tests", []):
        verdict = '<span class="pass">passed</span>' if test["passed"] else '<span class="fail">failed</span>'
        rows.append(f"<tr><td>{escape(test['part'])}</td><td>{escape(test['name'])}</td>"
                    f"<td>{test['points']:g} / {test['max_points']:g}</td><td>{verdict}</td>"
                    f"<td>{escape(test['message'])}</td></tr>")
    flags = "".join(f"<li><b>{escape(str(f.get('part') or 'all parts'))}</b>: {escape(f['message'])}</li>"
                    for f in result.get("flags", []))
    notes = "".join(f"<li>{escape(n)}</li>" for n in result.get("notes", []))
    status = result.get("status", "graded")
    head = "" if status == "graded" else f"<p class='fail'>Not graded: {escape(result.get('reason') or status)}</p>"
    late = (f"<p class='fail'>Handed in {escape(describe(result['late']))}.</p>" if result.get("late") else "")
    superseded = (f"<p>This is an earlier submission; the one graded into the gradebook is "
                  f"<code>{escape(result['superseded_by'])}</code>.</p>") if result.get("superseded_by") else ""
    return "\n".join([
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{escape(assignment)}: feedback for {escape(student)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(assignment)}</h1><p>Student: <b>{escape(student)}</b> &middot; file: <code>{escape(origin)}</code></p>",
        head, superseded, late,
        f"<h2>Score: {result.get('score', 0):g} / {result.get('max_score', 0):g}</h2>",
        "<table><tr><th>part</th><th>test</th><th>points</th><th>result</th><th>message</th></tr>",
        *rows, "</table>",
        f"<div class='flag'><h3>Flagged</h3><ul>{flags}</ul></div>" if flags else "",
        f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "",
        "</body></html>",
    ])


def write_feedback(feedback_dir: Path, result: dict, student: str, assignment: str, notebook: str,
                   origin: str, index: int | None = None) -> Path:
    """Write ``feedback/<student>/<assignment>/<notebook>.html`` (and ``.json``) and return the HTML path.

    An earlier, superseded submission gets ``superseded-<index>-<notebook>.html`` beside it.
    """
    folder = Path(feedback_dir) / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    stem = notebook if index is None else f"superseded-{index:04d}-{notebook}"
    html = folder / f"{stem}.html"
    html.write_text(render_html(result, student, assignment, origin), encoding="utf-8")
    public = {k: result.get(k) for k in ("status", "reason", "score", "max_score", "tests", "flags", "notes",
                                          "superseded_by", "late")}
    (folder / f"{stem}.json").write_text(json.dumps(public, ensure_ascii=False, indent=1), encoding="utf-8")
    return html
