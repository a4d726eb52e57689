"""RNN vs Transformer: tokens per second (forward+backward) against sequence length.

The scratch LSTM (course_lib.nn.LSTM), torch.nn.LSTM (a fused C++/cuDNN loop) and one
Transformer layer of the same width, each on the same batch. The recurrent models must
walk the sequence step by step; the Transformer layer handles all positions at once.
Goal: the scratch LSTM within 2x of torch.nn.LSTM. The curve is chapter 1's figure.
"""
from __future__ import annotations

import torch

from course_lib.bench import environment, median_time
from course_lib.nn import LSTM, TransformerBlock

NAME = "rnn"


def run(quick: bool = False, device: torch.device = torch.device("cpu")) -> dict:
    width, batch = 128, 16
    lengths = [32, 128, 512] if quick else [32, 64, 128, 256, 512, 1024]
    models = {
        "scratch LSTM": LSTM(input_size=width, hidden_size=width),
        "torch.nn.LSTM": torch.nn.LSTM(width, width, batch_first=True),
        "Transformer layer": TransformerBlock(embed_dim=width, num_heads=4, hidden_dim=4 * width, causal=True),
    }
    for m in models.values():
        m.to(device)
    rows = []
    for t in lengths:
        x = torch.randn(batch, t, width, device=device)
        row = {"T": t}
        for name, model in models.items():
            def step(model=model):
                out = model(x)
                out = out[0] if isinstance(out, tuple) else out
                out.sum().backward()

            row[f"{name} tok/s"] = batch * t / median_time(step, 0.2 if quick else 0.4)
        row["scratch/torch LSTM time"] = row["torch.nn.LSTM tok/s"] / row["scratch LSTM tok/s"]
        rows.append(row)
    worst = max(r["scratch/torch LSTM time"] for r in rows)
    return {
        "title": f"Tokens per second, forward+backward (width {width}, batch {batch})",
        "environment": environment(device),
        "rows": rows,
        "goals": [f"scratch LSTM within 2x of torch.nn.LSTM: worst {worst:.2f}x " + ("met" if worst <= 2 else "missed")],
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ts = [r["T"] for r in result["rows"]]
    for key, style in [("scratch LSTM tok/s", "o-"), ("torch.nn.LSTM tok/s", "s-"), ("Transformer layer tok/s", "^-")]:
        ax.plot(ts, [r[key] for r in result["rows"]], style, label=key.removesuffix(" tok/s"))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("tokens / second (fwd+bwd)")
    ax.set_title("Sequential vs parallel processing")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
