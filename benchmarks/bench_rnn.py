"""RNN vs Transformer: tokens per second (forward+backward) against sequence length.

Side by side on the same batch: the scratch LSTM and GRU of ``course_lib.nn`` in both
implementations (``impl="naive"``, the step loop that autograd records, and ``impl="fused"``,
the same loop with a hand-written backward pass), ``torch.nn.LSTM``/``GRU`` (C++ loops; on the
CPU ``nn.LSTM`` runs oneDNN's fused LSTM kernel, on CUDA cuDNN's), and one Transformer layer of
the same width. The models take turns within each length, for several rounds, so that load from
elsewhere on a shared machine hits all of them alike; each model's time is that of its least
disturbed round (each round itself a median of repeats).
Goal: the fused scratch LSTM and GRU at most 1.5x the time of torch.nn's at every T.
The curves are chapter 1's and the efficiency chapter's figures.
"""
from __future__ import annotations

import torch

from course_lib.bench import environment, median_time
from course_lib.nn import GRU, LSTM, TransformerBlock

NAME = "rnn"
GOAL = 1.5  # fused scratch time / torch.nn time
RATIOS = {  # column -> (numerator, denominator), both times
    "LSTM fused/torch time": ("LSTM fused", "torch.nn.LSTM"),
    "GRU fused/torch time": ("GRU fused", "torch.nn.GRU"),
    "LSTM naive/torch time": ("LSTM naive", "torch.nn.LSTM"),
    "GRU naive/torch time": ("GRU naive", "torch.nn.GRU"),
}


def build_models(width: int) -> dict[str, torch.nn.Module]:
    return {
        "LSTM naive": LSTM(input_size=width, hidden_size=width, impl="naive"),
        "LSTM fused": LSTM(input_size=width, hidden_size=width, impl="fused"),
        "torch.nn.LSTM": torch.nn.LSTM(width, width, batch_first=True),
        "GRU naive": GRU(input_size=width, hidden_size=width, impl="naive"),
        "GRU fused": GRU(input_size=width, hidden_size=width, impl="fused"),
        "torch.nn.GRU": torch.nn.GRU(width, width, batch_first=True),
        "Transformer layer": TransformerBlock(embed_dim=width, num_heads=4, hidden_dim=4 * width, causal=True),
    }


def run(quick: bool = False, device: torch.device = torch.device("cpu")) -> dict:
    # median_time's torch.utils.benchmark.Timer times with one thread (its default). Its warm-up
    # call would use them all, and on a busy 2-core machine a 2-thread call can wait seconds for
    # the other core: one thread throughout, which the recorded environment then says.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(quick, device)
    finally:
        torch.set_num_threads(threads)


def _measure(quick: bool, device: torch.device) -> dict:
    width, batch = 128, 16
    lengths = [32, 128, 512] if quick else [32, 64, 128, 256, 512, 1024]
    rounds, min_run_time = (3, 0.1) if quick else (5, 0.1)
    models = build_models(width)
    for m in models.values():
        m.to(device)
    rows = []
    for t in lengths:
        x = torch.randn(batch, t, width, device=device)
        times = {name: [] for name in models}
        for _ in range(rounds):
            for name, model in models.items():
                def step(model=model):
                    out = model(x)
                    out = out[0] if isinstance(out, tuple) else out
                    out.sum().backward()

                times[name].append(median_time(step, min_run_time))
        seconds = {name: min(ts) for name, ts in times.items()}
        row = {"T": t, **{f"{name} tok/s": batch * t / s for name, s in seconds.items()}}
        row.update({col: seconds[num] / seconds[den] for col, (num, den) in RATIOS.items()})
        rows.append(row)
    goals = []
    for kind in ("LSTM", "GRU"):
        worst = max(rows, key=lambda r: r[f"{kind} fused/torch time"])
        ratio = worst[f"{kind} fused/torch time"]
        goals.append(f"fused {kind} within {GOAL}x of torch.nn.{kind} at every T: worst {ratio:.2f}x "
                     f"(T={worst['T']}) " + ("met" if ratio <= GOAL else "missed"))
    return {
        "title": f"Tokens per second, forward+backward (width {width}, batch {batch})",
        "environment": environment(device),
        "rounds": rounds,
        "timing": "per model and length: the least of the per-round medians",
        "goal": GOAL,
        "rows": rows,
        "goals": goals,
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    rows, ts = result["rows"], [r["T"] for r in result["rows"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, style in [("LSTM naive", "o--"), ("LSTM fused", "o-"), ("torch.nn.LSTM", "s-"),
                        ("Transformer layer", "^-")]:
        left.plot(ts, [r[f"{name} tok/s"] for r in rows], style, label=name)
    left.set_yscale("log")
    left.set_ylabel("tokens / second (fwd+bwd)")
    left.set_title("Sequential vs parallel processing")
    for col, style in [("LSTM naive/torch time", "o--"), ("LSTM fused/torch time", "o-"),
                       ("GRU naive/torch time", "v--"), ("GRU fused/torch time", "v-")]:
        right.plot(ts, [r[col] for r in rows], style, label=col.removesuffix(" time"))
    right.axhline(1.0, color="grey", lw=1)
    right.axhline(result.get("goal", GOAL), color="red", ls=":", label="goal")
    right.set_ylim(bottom=0)
    right.set_ylabel("time / torch.nn's time")
    right.set_title("Scratch recurrent layers against torch.nn")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length T")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
