"""``course bench``: run the ratio benchmarks in ``benchmarks/bench_*.py``.

``benchmarks/`` is a package: each module is imported as ``benchmarks.bench_<name>`` with the
repository root (the CLI's ``--root``) on ``sys.path``.

Each benchmark module has ``NAME``, ``run(quick, device) -> dict`` and ``plot(result, path)``.
Results land in ``benchmarks/results/<name>.json`` with a Markdown table and a PNG plot,
which the efficiency chapter loads. A module whose ``run`` also takes ``smoke`` can run every
code path at tiny sizes (``course bench --smoke``), to check a script before a GPU run; smoke
results go to a temporary folder unless ``--out`` names one.
"""
from __future__ import annotations

import importlib
import inspect
import sys
import tempfile
import time
from pathlib import Path

import torch

from .bench import write_results
from .device import pick_device


def discover(bench_dir: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(Path(bench_dir).glob("bench_*.py")):
        found[path.stem.removeprefix("bench_")] = path
    return found


def _load(path: Path):
    """Import ``benchmarks.bench_<name>`` by name, with the repository root (``--root``) on ``sys.path``,
    so that benchmarks import each other and their helpers as a package."""
    package = path.parent.resolve()
    if not (package / "__init__.py").is_file():
        raise ValueError(f"{package} has no __init__.py: the benchmarks are imported as the package "
                         f"{package.name!r}")
    if str(package.parent) not in sys.path:
        sys.path.insert(0, str(package.parent))
    module = importlib.import_module(f"{package.name}.{path.stem}")
    found = Path(module.__file__).resolve().parent
    if found != package:  # another package of that name was imported first or comes first on sys.path
        raise ValueError(f"{package.name}.{path.stem} was imported from {found}, not from {package}; "
                         f"run `course bench` from the repository root or pass --root")
    return module


def run_benchmarks(names, bench_dir: Path, out_dir: Path | None, quick: bool, device: str | None,
                   smoke: bool = False) -> list[Path]:
    available = discover(bench_dir)
    if not available:
        raise ValueError(f"no benchmarks (bench_*.py) found in {bench_dir}")
    explicit = bool(names)
    names = names or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; known: {sorted(available)}")
    dev = pick_device(device)
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="bench_smoke_")) if smoke else bench_dir / "results"
    written = []
    for name in names:
        module = _load(available[name])
        if not hasattr(module, "run"):
            continue  # a helper script, not a ratio benchmark
        if quick and not explicit and not getattr(module, "IN_QUICK_SET", True):
            print(f"[bench] {name}: not in the quick set; run `course bench {name}`", flush=True)
            continue
        takes_smoke = "smoke" in inspect.signature(module.run).parameters
        if smoke and not takes_smoke:
            print(f"[bench] {name}: has no smoke mode; skipped", flush=True)
            continue
        start = time.perf_counter()
        mode = "smoke" if smoke else ("quick" if quick else "full")
        print(f"[bench] {name} on {dev} ({mode}) ...", flush=True)
        result = module.run(quick=quick, device=dev, **({"smoke": True} if smoke else {}))
        result["seconds"] = round(time.perf_counter() - start, 1)
        if result.get("skipped"):
            print(f"[bench] {name}: skipped ({result['skipped']})", flush=True)
            continue
        result["quick"] = quick
        if smoke:
            result["title"] = "[smoke test, tiny sizes] " + result.get("title", name)
        path = write_results(f"{name}_{dev.type}" if dev.type != "cpu" else name, result, out_dir)
        if hasattr(module, "plot"):
            try:
                module.plot(result, path.with_suffix(".png"))
            except ImportError as err:  # a bare GPU machine may lack matplotlib; the figures still count
                print(f"[bench] {name}: no plot ({err})", flush=True)
        for goal in result.get("goals", []):
            print(f"[bench] {name}: {goal}")
        print(f"[bench] {name}: {result['seconds']} s -> {path}", flush=True)
        written.append(path)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return written
