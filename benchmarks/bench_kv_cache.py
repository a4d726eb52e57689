"""Generation with a KV cache vs recomputing the whole prefix at every step.

The same ``Decoder`` generates greedily from the same prompt with ``use_cache=True`` (each
step runs the model on one new token and reads the cached keys and values) and with
``use_cache=False`` (each step re-runs the model on prompt + everything generated so far).
Both give the same tokens, which is checked. Goal: the cache is at least 5x faster for 256
new tokens. On a GPU a third variant replays each cached step as one CUDA graph
(``cuda_graph=True``): at batch 1 a step is a few hundred tiny kernels, and launching them
from Python costs more than running them.
"""
from __future__ import annotations

import torch

from course_lib.bench import environment, timed_call
from course_lib.models import Decoder, DecoderConfig

NAME = "kv_cache"


def run(quick: bool = False, device: torch.device = torch.device("cpu"), smoke: bool = False) -> dict:
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # on a shared machine, several threads per op make the timings erratic
    try:
        return _run(quick, device, smoke)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: torch.device, smoke: bool) -> dict:
    config = DecoderConfig(vocab_size=4096, embed_dim=256, num_layers=4, num_heads=4, hidden_dim=1024,
                           max_len=1024, dropout=0.0)
    dtype, lengths = torch.float32, (64, 256, 512)
    if device.type == "cuda":  # GPT-2 small's shape (110M parameters with a 32k vocabulary), served in bf16
        config = DecoderConfig(vocab_size=32000, embed_dim=768, num_layers=12, num_heads=12, hidden_dim=3072,
                               max_len=1024, dropout=0.0)
        dtype = torch.bfloat16
        lengths = (64, 256) if quick else (64, 256, 512)
    if smoke:  # every code path at tiny sizes, to check the script
        config = DecoderConfig(vocab_size=64, embed_dim=32, num_layers=2, num_heads=2, hidden_dim=64, max_len=64)
        lengths = (8, 16)
    torch.manual_seed(0)
    model = Decoder(config).to(device, dtype).eval()
    prompt_len, batch = 16, 1
    prompt = torch.randint(0, config.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(0)).to(device)
    # A CUDA graph replays a whole decoding step as one launch; it only pays where launches
    # dominate, on a GPU. (On the CPU the same fixed-shape step would only add masked work.)
    variants = {"cached": dict(use_cache=True), "recompute": dict(use_cache=False)}
    if device.type == "cuda" or smoke:
        variants["graph"] = dict(cuda_graph=True)
    for kwargs in variants.values():  # warm-up: first calls pay for allocation
        model.generate(prompt, 8, **kwargs)
    repeats = 1 if (quick or smoke) else 3  # one generation of 512 tokens without the cache is already long
    rows = []
    for new_tokens in lengths:
        row, outs, best = {"new_tokens": new_tokens}, {}, {name: float("inf") for name in variants}
        for _ in range(repeats):  # alternate the variants, so that a burst of load hits all of them
            for name, kwargs in variants.items():
                t, outs[name] = timed_call(lambda: model.generate(prompt, new_tokens, **kwargs), device)
                best[name] = min(best[name], t)  # the least disturbed run of the same work
        for name in variants:
            row[f"{name}_ms"] = best[name] * 1e3
            row[f"{name}_ms_per_token"] = best[name] * 1e3 / new_tokens
        row["speedup"] = row["recompute_ms"] / row["cached_ms"]
        if "graph" in variants:
            row["graph_speedup"] = row["recompute_ms"] / row["graph_ms"]
        row["same_tokens"] = all(torch.equal(out, outs["recompute"]) for out in outs.values())
        rows.append(row)
    at256 = next(r for r in rows if r["new_tokens"] == 256) if not smoke else rows[-1]
    params = sum(p.numel() for p in model.parameters())
    goals = [f"cache >= 5x faster for {at256['new_tokens']} new tokens: {at256['speedup']:.1f}x "
             + ("met" if at256["speedup"] >= 5 else "missed")]
    if "graph" in variants:
        goals.append(f"cache replayed as a CUDA graph >= 5x faster: {at256['graph_speedup']:.1f}x "
                     + ("met" if at256["graph_speedup"] >= 5 else "missed"))
    goals.append("cached and recomputed tokens identical: " + ("yes" if all(r["same_tokens"] for r in rows) else "NO"))
    return {
        "title": (f"KV cache vs recomputing the prefix (greedy, e={config.embed_dim}, L={config.num_layers}, "
                  f"{params / 1e6:.1f}M params, {str(dtype).removeprefix('torch.')}, prompt {prompt_len}, b={batch})"),
        "environment": environment(device),
        "rows": rows,
        "goals": goals,
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    rows = result["rows"]
    n = [r["new_tokens"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(n, [r["recompute_ms_per_token"] for r in rows], "o-", label="recompute the prefix")
    axes[0].plot(n, [r["cached_ms_per_token"] for r in rows], "s-", label="KV cache")
    if "graph_ms" in rows[0]:
        axes[0].plot(n, [r["graph_ms_per_token"] for r in rows], "^-", label="KV cache, CUDA graph")
        axes[1].plot(n, [r["graph_speedup"] for r in rows], "^-", label="CUDA graph")
    axes[0].set_xlabel("new tokens")
    axes[0].set_ylabel("ms per generated token")
    axes[0].set_title("Cost per token")
    axes[0].legend()
    axes[1].plot(n, [r["speedup"] for r in rows], "o-")
    axes[1].axhline(5.0, color="gray", lw=0.8, ls="--")
    axes[1].set_xlabel("new tokens")
    axes[1].set_ylabel("recompute time / cached time")
    axes[1].set_title("Speed-up of the KV cache")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
