"""How many learners one server holds, and how fast it grades: the figures behind the README's sizing.

    python benchmarks/bench_grading_capacity.py [--n 12] [--headroom 0.2] [--out benchmarks/results]
    python -m benchmarks.bench_grading_capacity ...     (the same, from the repository root)

1. **A learner's memory.** A real ``jupyter lab --no-browser`` server with one ``python3``
   kernel (what each JupyterHub user runs). The kernel imports ``torch`` and ``course_lib``,
   then does what a chapter asks: a small decoder (4 layers, width 128) trained for 20 steps.
   For the server and the kernel: RSS (shared library pages counted in full), PSS (shared
   pages split between the processes that map them) and USS (private pages: what one more
   learner adds), and the kernel's peak RSS.
2. **Capacity.** Learners that fit in the memory left after ``--headroom`` (a fraction kept
   free for the OS, the hub, page cache and spikes): conservatively, each with the full RSS
   (server plus the kernel's peak); and with sharing, the shared pages once plus each
   learner's private pages and peak.
3. **Grading throughput.** ``course grade`` on the same N submissions (``bench_grading.py``'s
   class mix) with the local pool (1 and 2 workers) and with a Dask ``LocalCluster`` of 2
   worker processes with 1 thread each; the template is made before the clock starts and
   the cluster is started before it. All runs must give every learner the same total.

Writes ``grading_capacity.json`` and ``grading_capacity.md`` (with the sentences that the
README's sizing section quotes, see :func:`sizing_lines`). A shared machine's load slows every
run: the load average is recorded with each figure.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as a script: make the repository root importable (for `benchmarks`)
    sys.path.insert(0, str(REPO))

from benchmarks import grading_cases as cases  # noqa: E402
from benchmarks.bench_grading import layout, submissions  # noqa: E402
from course_lib.bench import environment  # noqa: E402
from course_lib.grading import merge  # noqa: E402
from course_lib.grading.grade import GradeOptions, grade_assignment, prepare_template  # noqa: E402
from course_lib.grading.state import tree_hash  # noqa: E402

GIB = 1 << 30
WORKLOAD = """
import torch, course_lib
from course_lib.models.decoder import Decoder, DecoderConfig
torch.manual_seed(0)
model = Decoder(DecoderConfig(vocab_size=256, embed_dim=128, num_layers=4, num_heads=4, hidden_dim=512, max_len=128))
opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
for _ in range(20):
    ids = torch.randint(0, 256, (16, 128))
    loss = torch.nn.functional.cross_entropy(model(ids)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    opt.zero_grad(); loss.backward(); opt.step()
"""


def memory_of(pid: int) -> dict:
    info, status = psutil.Process(pid).memory_full_info(), Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) << 10 for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"rss": info.rss, "pss": info.pss, "uss": info.uss, "peak_rss": peak}


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def learner_memory(work: Path) -> dict:
    """Start ``jupyter lab`` and a kernel through its REST API, run the workload, measure."""
    from jupyter_client import BlockingKernelClient

    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(work / "runtime"), PYDEVD_DISABLE_FILE_VALIDATION="1")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}"]
    cmd += ["--allow-root"] if os.geteuid() == 0 else []
    started = time.monotonic()
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if _get(f"{base}/api/status?token={token}") == 200 and _get(f"{base}/lab?token={token}") == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() - started > 300:
                raise RuntimeError("jupyter lab did not start")
            time.sleep(0.5)
        server_ready = time.monotonic() - started
        request = urllib.request.Request(f"{base}/api/kernels?token={token}", data=b'{"name": "python3"}',
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            kernel_id = json.loads(response.read())["id"]
        client = BlockingKernelClient(connection_file=str(work / "runtime" / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        client.kernel_info()  # not wait_for_ready(): its 1 s heartbeat gives up on a busy machine
        client.get_shell_msg(timeout=300)
        kernel = next(p for p in psutil.Process(server.pid).children(recursive=True)
                      if "ipykernel" in " ".join(p.cmdline()))
        idle = {"server": memory_of(server.pid), "kernel": memory_of(kernel.pid)}
        cpu = kernel.cpu_times()
        reply = client.execute_interactive(WORKLOAD, timeout=600, output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the workload failed in the kernel: {reply['content']}")
        after = kernel.cpu_times()
        worked = {"server": memory_of(server.pid), "kernel": memory_of(kernel.pid)}
        client.stop_channels()
        return {"server_ready_s": server_ready, "idle": idle, "after_workload": worked,
                "workload_cpu_s": (after.user + after.system) - (cpu.user + cpu.system)}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        for child in psutil.Process().children(recursive=True):  # the kernel, if the server left it
            if "ipykernel" in " ".join(child.cmdline()):
                child.kill()


def capacity(memory: dict, total: int, headroom: float) -> dict:
    server, kernel = memory["after_workload"]["server"], memory["after_workload"]["kernel"]
    usable = total * (1 - headroom)
    full = server["rss"] + kernel["peak_rss"]  # nothing shared, the kernel at its peak
    shared = (server["rss"] - server["uss"]) + (kernel["rss"] - kernel["uss"])
    private = server["uss"] + kernel["uss"] + (kernel["peak_rss"] - kernel["rss"])  # and the transient peak
    return {"total_bytes": total, "headroom": headroom, "usable_bytes": usable, "per_learner_full_bytes": full,
            "shared_bytes": shared, "per_learner_private_bytes": private,
            "learners_conservative": int(usable // full), "learners_shared": int((usable - shared) // private)}


def _prepared_root(work: Path) -> Path:
    root = cases.make_course(work)
    source, state_dir = root / "solutions" / "attention", root / ".grading" / "attention"
    state_dir.mkdir(parents=True)
    prepare_template(source, "attention", state_dir, tree_hash(source))
    return root


def _timed(name: str, root: Path, incoming: Path, options: GradeOptions) -> tuple[dict, dict]:
    load, started = os.getloadavg()[0], time.monotonic()
    summary = grade_assignment("attention", incoming, root, options)
    seconds = time.monotonic() - started
    n = summary.graded_now
    print(f"{name}: {n} notebooks in {seconds:.1f} s ({60 * n / seconds:.1f}/min)", flush=True)
    return ({"run": name, "notebooks": n, "seconds": seconds, "per_minute": 60 * n / seconds,
             "load_before": load, "load_after": os.getloadavg()[0]},
            merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention"))


def grading_throughput(work: Path, n: int) -> list[dict]:
    from distributed import LocalCluster

    incoming = work / "incoming"
    layout(incoming, submissions(n))
    runs, scores = [], {}
    for workers in (1, 2):
        options = GradeOptions(workers=workers, cell_timeout=120, progress=False)
        row, scores[f"local-{workers}"] = _timed(f"local pool, {workers} worker(s)",
                                                 _prepared_root(work / f"w{workers}"), incoming, options)
        runs.append(row)
    started = time.monotonic()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        cluster_start = time.monotonic() - started
        row, scores["dask"] = _timed("Dask LocalCluster, 2 workers x 1 thread", _prepared_root(work / "dask"),
                                     incoming, GradeOptions(scheduler=cluster.scheduler_address, cell_timeout=120,
                                                            progress=False))
    runs.append({**row, "cluster_start_s": cluster_start})
    if len({json.dumps(s, sort_keys=True) for s in scores.values()}) != 1 or len(scores["dask"]) != n:
        raise SystemExit(f"the runs disagree: {scores}")
    return runs


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def sizing_lines(result: dict) -> list[str]:
    """The sentences the README quotes, word for word (a test checks them against the JSON)."""
    env, mem, cap = result["environment"], result["learner"]["after_workload"], result["capacity"]
    runs = {r["run"]: r for r in result["grading"]}
    one, two = runs["local pool, 1 worker(s)"], runs["local pool, 2 worker(s)"]
    dask = runs["Dask LocalCluster, 2 workers x 1 thread"]
    cores, cpu_s, n = env["cpu_count"], result["learner"]["workload_cpu_s"], cap["learners_conservative"]
    loads = [r[k] for r in result["grading"] for k in ("load_before", "load_after")]
    return [
        f"Measured on {env['date']}: {cores} cores ({env['cpu']}), {_gib(cap['total_bytes'])} of memory, "
        f"torch {env['torch']}.",
        f"One learner (`jupyter lab` and a kernel that imported torch and course_lib and trained a small "
        f"decoder for 20 steps): the server {_gib(mem['server']['rss'])} RSS, the kernel {_gib(mem['kernel']['rss'])} "
        f"RSS, {_gib(mem['kernel']['uss'])} of it private, with a peak of {_gib(mem['kernel']['peak_rss'])}.",
        f"With {cap['headroom']:.0%} of memory kept free, this machine holds {n} learners if nothing were shared "
        f"and {cap['learners_shared']} with the shared libraries counted once.",
        f"That training took {cpu_s:.1f} CPU s: {n} learners running it at once on {cores} cores would each "
        f"wait about {cpu_s * n / cores:.0f} s for it.",
        f"Grading ({dask['notebooks']} notebooks a run, load average {min(loads):.1f} to {max(loads):.1f} from "
        f"other work on the machine): {one['per_minute']:.1f} notebooks/minute with 1 local worker, "
        f"{two['per_minute']:.1f} with 2, {dask['per_minute']:.1f} on a Dask LocalCluster of 2 workers.",
    ]


def write_markdown(result: dict, path: Path) -> None:
    mem, cap, env = result["learner"], result["capacity"], result["environment"]
    lines = ["# Capacity: learners per server, grading throughput", "",
             f"Measured with torch {env['torch']} on {env['cpu']}, "
             f"{env['cpu_count']} cores, {_gib(cap['total_bytes'])}, {env['date']}; "
             f"`jupyter lab` ready in {mem['server_ready_s']:.1f} s; the workload took {mem['workload_cpu_s']:.1f} "
             "CPU s.", "", "| process | when | RSS | PSS | USS | peak RSS |", "|---|---|---|---|---|---|"]
    for when in ("idle", "after_workload"):
        for proc in ("server", "kernel"):
            m = mem[when][proc]
            lines.append(f"| {proc} | {when.replace('_', ' ')} | {_gib(m['rss'])} | {_gib(m['pss'])} | "
                         f"{_gib(m['uss'])} | {_gib(m['peak_rss'])} |")
    lines += ["", f"Capacity with {cap['headroom']:.0%} headroom ({_gib(cap['usable_bytes'])} usable): "
              f"{cap['learners_conservative']} learners at {_gib(cap['per_learner_full_bytes'])} each "
              "(nothing shared); "
              f"{cap['learners_shared']} at {_gib(cap['per_learner_private_bytes'])} each plus "
              f"{_gib(cap['shared_bytes'])} shared once.", "",
              "| grading run | notebooks | s | notebooks/min | load before | load after |", "|---|---|---|---|---|---|"]
    for r in result["grading"]:
        lines.append(f"| {r['run']} | {r['notebooks']} | {r['seconds']:.1f} | {r['per_minute']:.1f} | "
                     f"{r['load_before']:.1f} | {r['load_after']:.1f} |")
    lines += ["", "Quoted in the README (\"Running a class\"):", ""] + [f"- {line}" for line in sizing_lines(result)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="submissions per grading run")
    parser.add_argument("--headroom", type=float, default=0.2, help="fraction of memory kept free")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    try:
        (work / "lab").mkdir()
        learner = learner_memory(work / "lab")
        print(f"learner: {json.dumps(learner['after_workload'])}", flush=True)
        grading = grading_throughput(work / "grading", args.n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"environment": environment("cpu"), "learner": learner,
              "capacity": capacity(learner, psutil.virtual_memory().total, args.headroom), "grading": grading}
    out = Path(args.out)
    (out / "grading_capacity.json").write_text(json.dumps(result, indent=1))
    write_markdown(result, out / "grading_capacity.md")
    print("\n".join(sizing_lines(result)))


if __name__ == "__main__":
    main()
