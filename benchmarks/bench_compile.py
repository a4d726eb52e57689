"""Eager vs torch.compile for one GPT training step (forward + backward + AdamW).

Compile time is reported on its own: it is paid once, and the ratio that matters for a
long run is the steady-state step time. On a small CPU model the compiled step may not
win at all; the point of the benchmark is to measure rather than assume.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from course_lib.bench import environment, median_time
from course_lib.models.decoder import Decoder, DecoderConfig

NAME = "compile"
# Compiling takes minutes on a 2-core CPU, so `course bench --quick` leaves this one out;
# `course bench compile` runs it.
IN_QUICK_SET = False


def _step_fn(model, opt, ids):
    def step():
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def run(quick: bool = False, device: torch.device = torch.device("cpu")) -> dict:
    config = DecoderConfig(vocab_size=256, embed_dim=128, num_layers=2 if quick else 4, num_heads=4,
                           hidden_dim=512, max_len=256)
    torch.manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (8, 129), device=device)
    eager = Decoder(config).to(device)
    compiled_model = Decoder(config).to(device)
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model)
    step_eager = _step_fn(eager, torch.optim.AdamW(eager.parameters(), lr=1e-4), ids)
    step_compiled = _step_fn(compiled, torch.optim.AdamW(compiled_model.parameters(), lr=1e-4), ids)
    start = time.perf_counter()
    try:
        step_compiled()  # the first call compiles forward and backward graphs
        compile_s = time.perf_counter() - start
        t_compiled = median_time(step_compiled, 0.5)
        note = ""
    except Exception as err:  # no C++ compiler, unsupported backend...: report, do not crash
        compile_s, t_compiled, note = float("nan"), float("nan"), f"torch.compile failed: {type(err).__name__}"
    t_eager = median_time(step_eager, 0.5)
    row = {"layers": config.num_layers, "eager_ms": t_eager * 1e3, "compiled_ms": t_compiled * 1e3,
           "speedup": t_eager / t_compiled, "compile_s": compile_s, "note": note}
    breakeven = compile_s / max((t_eager - t_compiled), 1e-12) if t_compiled < t_eager else float("inf")
    return {
        "title": "Eager vs torch.compile, GPT training step (b=8, T=128, e=128)",
        "environment": environment(device),
        "rows": [row],
        "goals": [f"compiled step {row['speedup']:.2f}x eager; compile took {compile_s:.1f} s, "
                  f"paid back after {breakeven:.0f} steps" if breakeven != float("inf")
                  else f"compiled step {row['speedup']:.2f}x eager: no gain at this size; compile took {compile_s:.1f} s"],
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    row = result["rows"][0]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.bar(["eager", "torch.compile"], [row["eager_ms"], row["compiled_ms"]], color=["#888", "#3a7"])
    ax.set_ylabel("ms per training step")
    ax.set_title(f"compile time (once): {row['compile_s']:.1f} s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
