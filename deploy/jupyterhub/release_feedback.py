"""Send the feedback pages of ``course grade`` to the learners through nbgrader's exchange.

Run by an instructor in the course folder, after ``nbgrader collect`` and ``course grade``:

    python deploy/jupyterhub/release_feedback.py attention

``course grade`` writes ``feedback/<learner>/<assignment>/<notebook>.html``. nbgrader's
``release_feedback`` files each page in the exchange under a name derived from the secret
that the learner's submission carried (``submission_secret.txt``), so this copies that
secret and the time stamp from ``submitted/`` next to each page first. nbgrader leaves the
pages readable by anyone who knows the name; here each one is then readable by its learner
only (a POSIX ACL naming that system user; the instructor stays its owner).
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import sys
from pathlib import Path

import posix_acl  # beside this file


def grant_read(path: Path, uid: int) -> None:
    """``chmod 640`` plus read access for one more user: ``setfacl -m u:<uid>:r path``."""
    os.chmod(path, 0o640)
    try:
        posix_acl.grant(path, posix_acl.READ, uid=uid)
    except posix_acl.NoACLs:
        raise SystemExit(f"{path.parent}: this file system has no POSIX ACLs, so a page cannot be given "
                         "to one learner only; mount it with ACLs (ext4 and xfs have them by default). "
                         "The pages released so far are readable by you and your group only.") from None


def release(assignment: str, exclude: list[str]) -> Path:
    """nbgrader's ``release_feedback``, as its command runs it, in this process (one nbgrader
    start-up less), for every learner but ``exclude``; returns the exchange's feedback folder."""
    from nbgrader.apps.baseapp import NbGrader
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange import ExchangeError, ExchangeFactory

    app = NbGrader()
    app.load_config_file()  # the course's nbgrader_config.py and the role's (exchange, course id)
    coursedir = CourseDirectory(config=app.config)
    coursedir.assignment_id = assignment
    coursedir.student_id_exclude = ",".join(exclude)
    exchange = ExchangeFactory(config=app.config).ReleaseFeedback(
        coursedir=coursedir, authenticator=Authenticator(config=app.config), config=app.config)
    try:
        exchange.start()
    except ExchangeError as err:
        raise SystemExit(f"nbgrader could not release the feedback: {err}") from None
    return Path(exchange.root) / coursedir.course_id / "feedback"


def stage(root: Path, assignment: str) -> tuple[list[tuple[str, int, Path]], dict[str, str]]:
    """(learner, uid, page) for each page that can go back, and why the others cannot.

    Copies each learner's submission secret and time stamp from ``submitted/`` next to
    their pages, where nbgrader's ``release_feedback`` looks for them.
    """
    pages = sorted((root / "feedback").glob(f"*/{assignment}/*.html"))
    if not pages:
        raise SystemExit(f"no feedback pages in {root / 'feedback'}/*/{assignment}/: "
                         f"run `course grade {assignment} --submissions submitted` first")
    ready, skipped = [], {}
    for learner in sorted({p.parent.parent.name for p in pages}):
        submitted = root / "submitted" / learner / assignment
        missing = [n for n in ("submission_secret.txt", "timestamp.txt") if not (submitted / n).is_file()]
        try:
            uid = pwd.getpwnam(learner).pw_uid
        except KeyError:
            skipped[learner] = "there is no system user of that name"
            continue
        if missing:
            skipped[learner] = (f"{submitted / missing[0]} is missing: only work handed in through the "
                                f"exchange gets its feedback back there (`nbgrader collect {assignment}`)")
            continue
        folder = root / "feedback" / learner / assignment
        for name in ("submission_secret.txt", "timestamp.txt"):
            shutil.copy(submitted / name, folder / name)
        for page in folder.glob("*.html"):
            os.chmod(page, 0o600)  # nbgrader copies the mode: no moment when a released page is world-readable
            ready.append((learner, uid, page))
    return ready, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="e.g. attention")
    parser.add_argument("--course-root", default=".", help="the course folder (holds nbgrader_config.py)")
    args = parser.parse_args(argv)
    root = Path(args.course_root).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise SystemExit(f"{root} is not a course folder: it has no nbgrader_config.py")
    os.chdir(root)  # nbgrader reads the course's configuration from the current folder
    ready, skipped = stage(root, args.assignment)
    outbound = release(args.assignment, exclude=sorted(skipped)) if ready else None

    from nbgrader.utils import notebook_hash

    for learner, uid, page in ready:
        secret = (page.parent / "submission_secret.txt").read_text()
        released = outbound / f"{notebook_hash(secret=secret, notebook_id=page.stem)}.html"
        if not released.is_file():
            raise SystemExit(f"nbgrader did not release {page} (expected {released})")
        grant_read(released, uid)
        print(f"released {page.relative_to(root)} to {learner}")
    for learner, why in skipped.items():
        print(f"NOT released to {learner}: {why}", file=sys.stderr)
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
