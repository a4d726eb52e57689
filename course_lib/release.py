"""``python -m course_lib.release [ASSIGNMENT ...]``: regenerate exercises/ from solutions/
(``make release``); the same as ``course release``, which names the assignments the same way."""
import sys
from pathlib import Path

from .grading import release_all

if __name__ == "__main__":
    try:
        released = release_all(Path.cwd(), sys.argv[1:] or None)
    except ValueError as err:  # an unknown assignment: say which ones exist
        print(f"python -m course_lib.release: {err}", file=sys.stderr)
        sys.exit(2)
    for path in released:
        print(f"released {path}")
