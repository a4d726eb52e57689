"""Generation with a KV cache vs recomputing the whole prefix at every step.

The same ``Decoder`` generates greedily from the same prompt with ``use_cache=True`` (each
step runs the model on one new token and reads the cached keys and values) and with
``use_cache=False`` (each step re-runs the model on prompt + everything generated so far).
Both give the same tokens, which is checked. Goal: the cache is at least 5x faster for 256
new tokens.
"""
from __future__ import annotations

import time

import torch

from course_lib.bench import environment
from course_lib.models import Decoder, DecoderConfig

NAME = "kv_cache"


def _time(fn, repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    """Median seconds of ``fn()`` over ``repeats`` runs, and its output (to compare the two paths)."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], out


def run(quick: bool = False, device: torch.device = torch.device("cpu")) -> dict:
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # on a shared machine, several threads per op make the timings erratic
    try:
        return _run(quick, device)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: torch.device) -> dict:
    config = DecoderConfig(vocab_size=4096, embed_dim=256, num_layers=4, num_heads=4, hidden_dim=1024,
                           max_len=1024, dropout=0.0)
    if device.type == "cuda":
        config = DecoderConfig(vocab_size=32000, embed_dim=768, num_layers=12, num_heads=12, hidden_dim=3072,
                               max_len=1024, dropout=0.0)
    torch.manual_seed(0)
    model = Decoder(config).to(device).eval()
    prompt_len, batch = 16, 1
    prompt = torch.randint(0, config.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(0)).to(device)
    for use_cache in (True, False):  # warm-up: first calls pay for allocation
        model.generate(prompt, 8, use_cache=use_cache)
    repeats = 1 if quick else 3  # one generation of 512 tokens without the cache is already long
    rows = []
    for new_tokens in (64, 256, 512):
        t_cached, out_cached = _time(lambda: model.generate(prompt, new_tokens, use_cache=True), repeats, device)
        t_full, out_full = _time(lambda: model.generate(prompt, new_tokens, use_cache=False), repeats, device)
        rows.append({
            "new_tokens": new_tokens, "cached_ms": t_cached * 1e3, "recompute_ms": t_full * 1e3,
            "cached_ms_per_token": t_cached * 1e3 / new_tokens, "recompute_ms_per_token": t_full * 1e3 / new_tokens,
            "speedup": t_full / t_cached, "same_tokens": torch.equal(out_cached, out_full),
        })
    at256 = next(r for r in rows if r["new_tokens"] == 256)
    params = sum(p.numel() for p in model.parameters())
    return {
        "title": (f"KV cache vs recomputing the prefix (greedy, e={config.embed_dim}, L={config.num_layers}, "
                  f"{params / 1e6:.1f}M params, prompt {prompt_len}, b={batch})"),
        "environment": environment(device),
        "rows": rows,
        "goals": [
            f"cache >= 5x faster for 256 new tokens: {at256['speedup']:.1f}x " + ("met" if at256["speedup"] >= 5 else "missed"),
            "cached and recomputed tokens identical: " + ("yes" if all(r["same_tokens"] for r in rows) else "NO"),
        ],
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    rows = result["rows"]
    n = [r["new_tokens"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(n, [r["recompute_ms_per_token"] for r in rows], "o-", label="recompute the prefix")
    axes[0].plot(n, [r["cached_ms_per_token"] for r in rows], "s-", label="KV cache")
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
