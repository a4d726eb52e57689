"""The ``course`` command: one entry point for learners and instructors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_info(args) -> int:
    import torch

    from .device import available_devices, pick_device

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"devices present: {', '.join(available_devices())}; default: {pick_device()}")
    return 0


def _cmd_release(args) -> int:
    from .grading import release_all

    for path in release_all(Path(args.root), args.assignment or None):
        print(f"released {path}")
    return 0


def _cmd_bench(args) -> int:
    from .bench_runner import run_benchmarks

    root = Path(args.root)
    out = Path(args.out) if args.out else (None if args.smoke else root / "benchmarks" / "results")
    run_benchmarks(args.names, root / "benchmarks", out, args.quick, args.device, smoke=args.smoke)
    return 0


def _cmd_check(args) -> int:
    from .grading.check import check_notebook

    report = check_notebook(Path(args.notebook), timeout=args.timeout)
    print(report.render())
    return 0 if report.ok else 1


def _cmd_grade(args) -> int:
    from .grading.dask_pool import check_address
    from .grading.grade import GradeOptions, grade_assignment

    options = GradeOptions(workers=args.workers, cell_timeout=args.timeout, memory_mb=args.memory_mb,
                           force=args.force, regexp=args.regexp, progress=not args.no_progress,
                           csv=Path(args.csv) if args.csv else None,
                           scheduler=check_address(args.scheduler) if args.scheduler else None)
    summary = grade_assignment(args.assignment, Path(args.submissions), Path(args.course_root), options)
    print(summary.report())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Transformers, Piece by Piece: tools for learners and instructors.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show the torch version and the devices course_lib will use")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("release", help="regenerate exercises/ from solutions/ with nbgrader")
    p.add_argument("assignment", nargs="*", help="assignments to release (default: all)")
    p.add_argument("--root", default=".", help="course root holding solutions/ and exercises/")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("bench", help="run the ratio benchmarks and write benchmarks/results/")
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--quick", action="store_true", help="smaller sizes; the whole set finishes in minutes")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best present)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, every code path: checks a script, no figures")
    p.add_argument("--out", default=None, help="results folder (default: benchmarks/results; a temporary one "
                                               "with --smoke)")
    p.add_argument("--root", default=".", help="repository root holding benchmarks/")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("check", help="run a notebook's visible tests and report per part (learners)")
    p.add_argument("notebook", help="e.g. exercises/attention/attention.ipynb")
    p.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("grade", help="autograde a class's submissions in isolated, parallel sandboxes")
    p.add_argument("assignment", help="assignment name, e.g. attention")
    p.add_argument("--submissions", required=True, help="a directory (submitted/ layout or LMS files) or an LMS zip")
    p.add_argument("--workers", type=int, default=2, help="submissions graded in parallel (on this machine)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="grade on this Dask cluster instead, one task per submission (needs course-lib[cluster])")
    p.add_argument("--course-root", default=".", help="course root holding nbgrader_config.py and gradebook.db")
    p.add_argument("--timeout", type=int, default=30, help="seconds allowed per cell")
    p.add_argument("--memory-mb", type=int, default=3072, help="memory limit of each kernel and its processes")
    p.add_argument("--force", action="store_true", help="regrade submissions graded before")
    p.add_argument("--regexp", help="nbgrader-style named regexp for LMS file names (student_id, file_id)")
    p.add_argument("--csv", help="where to write the grades CSV (default: <course root>/grades.csv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as err:  # bad input or a failed step: a clear message
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
