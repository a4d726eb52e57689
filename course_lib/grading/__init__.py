"""Helpers around nbgrader: releasing exercises, checking and grading submissions.

Learners: ``check`` (``course check``). Instructors: ``release`` (``course release``) and
``grade`` (``course grade``), which is built from ``collect`` -> ``pool`` of ``worker``
processes (``repair``, ``policy``, nbgrader's Autograde with ``execute``, ``results``) with
kernels in the ``sandbox`` (``kernel``, ``integrity``) -> ``merge``, ``feedback``, ``state``.
``guards`` and ``integrity`` are imported by hidden tests inside the grading kernel.
"""
from .release import generate_release, generate_releases, release_all

__all__ = ["generate_release", "generate_releases", "release_all"]
