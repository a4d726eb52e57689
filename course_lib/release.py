"""``python -m course_lib.release``: regenerate exercises/ from solutions/ (``make release``)."""
from pathlib import Path

from .grading import release_all

if __name__ == "__main__":
    for path in release_all(Path.cwd()):
        print(f"released {path}")
