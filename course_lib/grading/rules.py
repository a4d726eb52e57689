"""What one assignment forbids and protects, declared in its own notebook.

Grading knows no chapter: the rules specific to an assignment live in the notebook-level
metadata of ``solutions/<a>/<a>.ipynb`` (nbgrader's release keeps it) and are read from the
release, never from the learner's copy, whose metadata the learner can edit::

    "metadata": {"course": {
        "forbidden": {"names": ["scaled_dot_product_attention"], "modules": ["course_lib"]},
        "watched": {"course_lib.nn.attention": ["naive_attention"]}
    }}

* ``forbidden.names``   functions a learner's cell may not name (import, call or alias);
* ``forbidden.modules`` top-level modules a learner's cell may not import;
* ``watched``           module -> attributes the hidden tests use as references: the grading
  kernel imports them before any learner code runs and flags a cell that replaces one.

An assignment without ``course`` metadata forbids nothing beyond the generic rules
(``policy.py``) and watches only what every test relies on (``integrity.WATCHED``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from nbformat import NotebookNode


@dataclass(frozen=True)
class AssignmentRules:
    forbidden_names: frozenset[str] = frozenset()
    forbidden_modules: frozenset[str] = frozenset()
    watched: dict[str, list[str]] = field(default_factory=dict)

    def watched_json(self) -> str:
        return json.dumps(self.watched, sort_keys=True)


def _names(value, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"notebook metadata {where} must be a list of names, got {value!r}")
    return frozenset(value)


def rules_of(nb: NotebookNode | dict) -> AssignmentRules:
    """The rules a (release or source) notebook declares; ``ValueError`` if they are malformed."""
    course = nb.get("metadata", {}).get("course", {})
    if not isinstance(course, dict):
        raise ValueError(f"notebook metadata 'course' must be a mapping, got {course!r}")
    forbidden = course.get("forbidden", {})
    if not isinstance(forbidden, dict) or set(forbidden) - {"names", "modules"}:
        raise ValueError(f"notebook metadata course.forbidden must be {{'names': [...], 'modules': [...]}}, "
                         f"got {forbidden!r}")
    watched = course.get("watched", {})
    if not isinstance(watched, dict):
        raise ValueError(f"notebook metadata course.watched must map a module to attributes, got {watched!r}")
    return AssignmentRules(
        forbidden_names=_names(forbidden.get("names", []), "course.forbidden.names"),
        forbidden_modules=_names(forbidden.get("modules", []), "course.forbidden.modules"),
        watched={module: sorted(_names(attrs, f"course.watched[{module!r}]")) for module, attrs in watched.items()},
    )
