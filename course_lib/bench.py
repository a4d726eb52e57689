"""Measuring helpers for the ratio benchmarks in ``benchmarks/``.

Every figure the course reports is a ratio of two things measured side by side in the
same process, each the median of several repeats (``torch.utils.benchmark``), because a
shared 2-core machine is too noisy for absolute times. Each run records what it ran on.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils import benchmark


def environment(device: torch.device | str = "cpu") -> dict:
    """What a result was measured on: torch, threads, CPU model, device name, date."""
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "device": device.type,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def timed_call(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[float, object]:
    """Seconds of one call of ``fn()``, waiting for the device before and after, and its output."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def median_time(fn: Callable[[], object], min_run_time: float = 0.3) -> float:
    """Median seconds per call of ``fn`` (CUDA is synchronised by the timer)."""
    fn()  # warm-up: first calls pay for allocation and kernel selection
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    return timer.blocked_autorange(min_run_time=min_run_time).median


def peak_memory(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated by tensors while ``fn`` runs, above what was live before.

    On CUDA this reads the caching allocator's counters. On the CPU it replays the
    allocation events that ``torch.profiler`` records (``Total Allocated`` after each one).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    if not totals:
        return 0
    # The first event's total includes its own allocation; the baseline is before it.
    first = next(e for e in events if e.get("name") == "[memory]")
    baseline = totals[0] - first["args"].get("Bytes", 0)
    return max(totals) - baseline


def write_results(name: str, result: dict, out_dir: Path) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` (a table of ``result['rows']``, the goals, then
    any ``result['notes']``, Markdown paragraphs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    rows = result.get("rows", [])
    if rows:
        cols = list(rows[0])
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in rows:
            lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
        env = result.get("environment", {})
        header = f"# {result.get('title', name)}\n\nMeasured with torch {env.get('torch')} on {env.get('gpu') or env.get('cpu')}, {env.get('threads')} threads, {env.get('date')}.\n\n"
        goals = "".join(f"- {g}\n" for g in result.get("goals", []))
        notes = "".join(f"\n{note}\n" for note in result.get("notes", []))  # e.g. a profiler table
        (out_dir / f"{name}.md").write_text(header + "\n".join(lines) + "\n\n" + goals + notes)
    return path


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)
