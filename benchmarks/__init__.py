"""The course's benchmarks, a package so that they import each other by name.

``course bench`` imports every ``bench_<name>.py`` as ``benchmarks.bench_<name>`` with the
repository root on ``sys.path``. Scripts with a ``__main__`` run either way:
``python benchmarks/bench_grading.py`` or ``python -m benchmarks.bench_grading`` from the root.
``grading_cases`` builds the submissions that both the grading benchmarks and the grading
tests grade.
"""
