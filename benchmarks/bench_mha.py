"""MultiHeadAttention vs torch.nn.MultiheadAttention with the same weights.

Both run forward+backward on the same batch; PyTorch's module takes its fast path where
it applies (inference without grad). The two alternate, each keeping its best of several
short measurements. Goal: ours at most 1.05x the time of PyTorch's.
"""
from __future__ import annotations

import torch

from course_lib.bench import environment, median_time
from course_lib.nn import MultiHeadAttention

NAME = "mha"


def _copy_weights(ours: MultiHeadAttention, theirs: torch.nn.MultiheadAttention) -> None:
    e = ours.embed_dim
    with torch.no_grad():
        for i, proj in enumerate([ours.q_proj, ours.k_proj, ours.v_proj]):
            proj.weight.copy_(theirs.in_proj_weight[i * e:(i + 1) * e])
            proj.bias.copy_(theirs.in_proj_bias[i * e:(i + 1) * e])
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def run(quick: bool = False, device: torch.device = torch.device("cpu")) -> dict:
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # on a shared machine, several threads per op make the timings erratic
    try:
        return _run(quick, device)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: torch.device) -> dict:
    embed_dim, heads, batch = 256, 8, 8
    lengths = [128, 512] if quick else [128, 256, 512, 1024]
    rows = []
    for t in lengths:
        theirs = torch.nn.MultiheadAttention(embed_dim, heads, batch_first=True).to(device)
        ours = MultiHeadAttention(embed_dim=embed_dim, num_heads=heads).to(device)
        _copy_weights(ours, theirs)
        x = torch.randn(batch, t, embed_dim, device=device)
        mask = torch.ones(t, t, dtype=torch.bool, device=device).triu(1)  # torch: True = blocked

        def ours_train():
            ours(x, is_causal=True).sum().backward()

        def theirs_train():
            theirs(x, x, x, attn_mask=mask, need_weights=False)[0].sum().backward()

        theirs.eval(); ours.eval()

        def ours_infer():
            with torch.no_grad():
                ours(x)

        def theirs_infer():
            with torch.no_grad():
                theirs(x, x, x, need_weights=False)  # eligible for the fast path

        # Alternate short measurements and keep each side's best: a burst of load from other
        # processes on a shared machine then hits both sides instead of one.
        fns = {"t_ours": ours_train, "t_theirs": theirs_train, "i_ours": ours_infer, "i_theirs": theirs_infer}
        best = {name: float("inf") for name in fns}
        for _ in range(2 if quick else 5):
            for name, fn in fns.items():
                best[name] = min(best[name], median_time(fn, min_run_time=0.1))
        t_ours, t_theirs, i_ours, i_theirs = best["t_ours"], best["t_theirs"], best["i_ours"], best["i_theirs"]
        rows.append({
            "T": t,
            "train_ours_ms": t_ours * 1e3, "train_torch_ms": t_theirs * 1e3, "train_ratio": t_ours / t_theirs,
            "infer_ours_ms": i_ours * 1e3, "infer_torch_ms": i_theirs * 1e3, "infer_ratio": i_ours / i_theirs,
        })
    worst = max(max(r["train_ratio"], r["infer_ratio"]) for r in rows)
    return {
        "title": f"MultiHeadAttention vs torch.nn.MultiheadAttention (e={embed_dim}, h={heads}, b={batch})",
        "environment": environment(device),
        "rows": rows,
        "goals": [f"at most 1.05x the time of torch.nn.MultiheadAttention: worst ratio {worst:.2f}x "
                  + ("met" if worst <= 1.05 else "missed")],
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ts = [r["T"] for r in result["rows"]]
    ax.plot(ts, [r["train_ratio"] for r in result["rows"]], "o-", label="forward+backward (causal)")
    ax.plot(ts, [r["infer_ratio"] for r in result["rows"]], "s-", label="inference")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("course_lib time / torch time")
    ax.set_title("MultiHeadAttention against PyTorch's")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
