"""Helpers around nbgrader: releasing exercises, checking and grading submissions."""
from .release import generate_release, release_all

__all__ = ["generate_release", "release_all"]
