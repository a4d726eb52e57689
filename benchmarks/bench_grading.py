"""Grading throughput: ``course grade --workers N`` against plain, serial ``nbgrader autograde``.

    python benchmarks/bench_grading.py [--n 100] [--workers 2] [--out results.json]
    python -m benchmarks.bench_grading ...     (the same, from the repository root)

Both grade the same N generated submissions of the attention assignment (a mix of correct,
wrong and blank answers) in fresh course roots. ``generate_assignment`` runs before the
clock starts for both. Plain nbgrader runs one process that grades the notebooks one after
the other with the default kernel; ``course grade`` adds collection, the sandbox, the
per-submission course roots, feedback, the gradebook merge and the CSV, and runs N workers.
The script checks that both give every learner the same total, then prints the speed-up.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable (for `benchmarks`)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import grading_cases as cases  # noqa: E402
from course_lib.grading import merge  # noqa: E402
from course_lib.grading.grade import GradeOptions, grade_assignment, prepare_template  # noqa: E402
from course_lib.grading.nbgrader_run import run_nbgrader  # noqa: E402
from course_lib.grading.state import tree_hash  # noqa: E402

def cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for (workers, kernels, nbgrader)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


BAD_SOFTMAX = "def stable_softmax(scores, mask=None):\n    e = torch.exp(scores)\n    return e / e.sum(-1, keepdim=True)"


def submissions(n: int) -> dict[str, bytes]:
    """A deterministic class: mostly right, some wrong in one part, some blank."""
    kinds = [{}] * 12 + [{"causal_mask": cases.WRONG["causal_mask"]}] * 3 + [{"attention": cases.WRONG["attention"]}] * 2 \
        + [{"stable_softmax": BAD_SOFTMAX}] + [None] * 2
    blank = cases.RELEASE.read_bytes()
    built = {}
    for i in range(n):
        kind = kinds[i % len(kinds)]
        built[f"student{i:03d}"] = blank if kind is None else cases.to_bytes(cases.build(kind))
    return built


def layout(folder: Path, subs: dict[str, bytes]) -> None:
    for student, data in subs.items():
        target = folder / student / "attention"
        target.mkdir(parents=True)
        (target / "attention.ipynb").write_bytes(data)


def plain_nbgrader(work: Path, subs: dict[str, bytes]) -> tuple[float, float, dict[str, float]]:
    root = cases.make_course(work / "plain")
    run_nbgrader(["generate_assignment", "attention", "--force"], root)
    layout(root / "submitted", subs)
    started, cpu = time.monotonic(), cpu_seconds()
    run_nbgrader(["autograde", "attention"], root, timeout=24 * 3600)
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu
    return elapsed, cpu, merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")


def course_grade(work: Path, subs: dict[str, bytes], workers: int) -> tuple[float, float, dict[str, float]]:
    root = cases.make_course(work / "ours")
    state_dir = root / ".grading" / "attention"
    state_dir.mkdir(parents=True)
    source = root / "solutions" / "attention"
    prepare_template(source, "attention", state_dir, tree_hash(source))
    layout(work / "incoming", subs)
    started, cpu = time.monotonic(), cpu_seconds()
    grade_assignment("attention", work / "incoming", root, GradeOptions(workers=workers, cell_timeout=120))
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu
    return elapsed, cpu, merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    subs = submissions(args.n)
    work = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        serial, serial_cpu, plain_scores = plain_nbgrader(work, subs)
        print(f"plain nbgrader autograde (serial): {args.n} notebooks in {serial:.1f} s "
              f"({serial_cpu / args.n:.2f} CPU s per notebook)", flush=True)
        parallel, parallel_cpu, our_scores = course_grade(work, subs, args.workers)
        print(f"course grade --workers {args.workers}:  {args.n} notebooks in {parallel:.1f} s "
              f"({parallel_cpu / args.n:.2f} CPU s per notebook)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if plain_scores != our_scores:
        differ = {s: (plain_scores.get(s), our_scores.get(s)) for s in subs if plain_scores.get(s) != our_scores.get(s)}
        raise SystemExit(f"the two graders disagree: {differ}")
    speedup = serial / parallel
    print(f"same totals for all {args.n} learners; speed-up {speedup:.2f}x on {os.cpu_count()} CPUs (goal: 1.8x); "
          f"load average at the end {os.getloadavg()[0]:.1f} (other work on the machine slows both runs)")
    if args.out:
        Path(args.out).write_text(json.dumps({"n": args.n, "workers": args.workers, "cpus": os.cpu_count(),
                                              "plain_serial_s": serial, "course_grade_s": parallel,
                                              "plain_cpu_s": serial_cpu, "course_grade_cpu_s": parallel_cpu,
                                              "speedup": speedup}, indent=1))


if __name__ == "__main__":
    main()
