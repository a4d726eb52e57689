"""Achieved TFLOP/s of fused attention in bf16 on a CUDA GPU, per forced SDPA backend.

Shapes follow the FlashAttention papers' benchmark: batch x seqlen = 16k tokens, 16
heads of dimension 128. FLOPs: forward 4*b*h*T^2*d (halved when causal); backward 2.5x
the forward. The published figures this is compared with are written into the result.
On a CPU the benchmark reports that it needs CUDA and measures nothing.
"""
from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from course_lib.bench import environment, median_time

NAME = "attention_tflops"
PUBLISHED = (
    "FlashAttention-3 paper (Shah et al., 2024), H100 80GB SXM5, bf16, head dim 128, forward pass, "
    "sequence 512-16k: FlashAttention-2 309-370 TFLOP/s, cuDNN 497-617, FlashAttention-3 467-648 "
    "(non-causal); causal: FlashAttention-2 191-335, FlashAttention-3 292-616."
)


def run(quick: bool = False, device: torch.device = torch.device("cpu")) -> dict:
    if device.type != "cuda":
        return {"title": "Fused attention TFLOP/s (bf16)", "skipped": "needs a CUDA GPU", "rows": [],
                "environment": environment(device)}
    heads, head_dim, tokens = 16, 128, 16384
    lengths = [1024, 4096] if quick else [1024, 2048, 4096, 8192, 16384]
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION}
    rows = []
    for t in lengths:
        b = tokens // t
        q, k, v = (torch.randn(b, heads, t, head_dim, device=device, dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        for causal in (False, True):
            flops_fwd = 4 * b * heads * t * t * head_dim / (2 if causal else 1)
            for name, backend in backends.items():
                def fwd():
                    with sdpa_kernel([backend]):
                        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

                def fwd_bwd():
                    fwd().backward(grad)

                try:
                    grad = torch.randn(b, heads, t, head_dim, device=device, dtype=torch.bfloat16)
                    t_fwd = median_time(fwd, 0.3)
                    t_fb = median_time(fwd_bwd, 0.3)
                except RuntimeError as err:
                    rows.append({"T": t, "causal": causal, "backend": name, "fwd_TFLOPs": float("nan"),
                                 "fwd_bwd_TFLOPs": float("nan"), "note": str(err).splitlines()[0][:60]})
                    continue
                rows.append({"T": t, "causal": causal, "backend": name,
                             "fwd_TFLOPs": flops_fwd / t_fwd / 1e12,
                             "fwd_bwd_TFLOPs": 3.5 * flops_fwd / t_fb / 1e12, "note": ""})
    best = max((r["fwd_TFLOPs"] for r in rows if r["fwd_TFLOPs"] == r["fwd_TFLOPs"]), default=float("nan"))
    return {
        "title": f"Fused attention TFLOP/s, bf16, {heads} heads x {head_dim}, {tokens} tokens per batch",
        "environment": environment(device),
        "rows": rows,
        "published": PUBLISHED,
        "goals": [f"best forward throughput {best:.0f} TFLOP/s; compare: {PUBLISHED}"],
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    if not result["rows"]:
        return
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name in sorted({r["backend"] for r in result["rows"]}):
        rows = [r for r in result["rows"] if r["backend"] == name and not r["causal"]]
        ax.plot([r["T"] for r in rows], [r["fwd_TFLOPs"] for r in rows], "o-", label=f"{name} (fwd)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(f"Fused attention, bf16, {result['environment'].get('gpu', '')}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
