"""Attention ladder: naive vs fused (and each SDPA backend that can be forced).

Forward and forward+backward, causal and not, over sequence lengths; plus peak memory
against T, which shows the naive path's quadratic weights against the fused kernels'
linear working set. Goals: fused >= 2x faster than naive at T=1024, and >= 4x lower peak
memory at T=2048.
"""
from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from course_lib.bench import environment, median_time, peak_memory
from course_lib.nn import scaled_dot_product_attention

NAME = "attention"
BACKENDS = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}


def _inputs(t, device, dtype, grad, heads=8, head_dim=64, batch=1):
    return [torch.randn(batch, heads, t, head_dim, device=device, dtype=dtype, requires_grad=grad) for _ in range(3)]


def _step(impl, q, k, v, causal, backward, backend=None):
    def run():
        if backend is None:
            out = scaled_dot_product_attention(q, k, v, is_causal=causal, impl=impl)
        else:
            with sdpa_kernel([backend]):
                out = scaled_dot_product_attention(q, k, v, is_causal=causal, impl="fused")
        if backward:
            out.sum().backward()
        return out

    return run


def run(quick: bool = False, device: torch.device = torch.device("cpu"), dtype=torch.float32) -> dict:
    lengths = [256, 512, 1024, 2048]
    causal_modes = [True] if quick else [True, False]
    passes = [False, True]
    rows = []
    for t in lengths:
        for causal in causal_modes:
            for backward in passes:
                q, k, v = _inputs(t, device, dtype, backward)
                naive = median_time(_step("naive", q, k, v, causal, backward), 0.2 if quick else 0.5)
                fused = median_time(_step("fused", q, k, v, causal, backward), 0.2 if quick else 0.5)
                row = {
                    "T": t, "causal": causal, "pass": "fwd+bwd" if backward else "fwd",
                    "naive_ms": naive * 1e3, "fused_ms": fused * 1e3, "speedup": naive / fused,
                }
                if not quick:
                    for name, backend in BACKENDS.items():
                        try:
                            row[f"{name}_ms"] = median_time(_step("fused", q, k, v, causal, backward, backend), 0.2) * 1e3
                        except RuntimeError:
                            row[f"{name}_ms"] = float("nan")  # backend not available for this device/dtype
                rows.append(row)
    memory = []
    for t in lengths:
        q, k, v = _inputs(t, device, dtype, False)
        with torch.no_grad():
            m_naive = peak_memory(_step("naive", q, k, v, True, False), device)
            m_fused = peak_memory(_step("fused", q, k, v, True, False), device)
        memory.append({"T": t, "naive_MiB": m_naive / 2**20, "fused_MiB": m_fused / 2**20,
                       "ratio": m_naive / max(m_fused, 1)})
    at1024 = next(r for r in rows if r["T"] == 1024 and r["causal"] and r["pass"] == "fwd")
    at2048 = next(m for m in memory if m["T"] == 2048)
    return {
        "title": f"Attention ladder ({dtype}, b=1, h=8, d=64)",
        "environment": environment(device),
        "rows": rows,
        "memory": memory,
        "goals": [
            f"fused >= 2x faster than naive at T=1024 (causal fwd): {at1024['speedup']:.2f}x "
            + ("met" if at1024["speedup"] >= 2 else "missed"),
            f"fused >= 4x lower peak memory at T=2048: {at2048['ratio']:.0f}x "
            + ("met" if at2048["ratio"] >= 4 else "missed"),
        ],
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for pass_ in ["fwd", "fwd+bwd"]:
        rows = [r for r in result["rows"] if r["causal"] and r["pass"] == pass_]
        axes[0].plot([r["T"] for r in rows], [r["speedup"] for r in rows], "o-", label=f"causal {pass_}")
    axes[0].axhline(1.0, color="gray", lw=0.8)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("sequence length T")
    axes[0].set_ylabel("naive time / fused time")
    axes[0].set_title("Speed-up of the fused kernel")
    axes[0].legend()
    mem = result["memory"]
    axes[1].plot([m["T"] for m in mem], [m["naive_MiB"] for m in mem], "o-", label="naive (stores t x s weights)")
    axes[1].plot([m["T"] for m in mem], [m["fused_MiB"] for m in mem], "s-", label="fused")
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("sequence length T")
    axes[1].set_ylabel("peak memory (MiB)")
    axes[1].set_title("Peak memory of one forward pass")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
