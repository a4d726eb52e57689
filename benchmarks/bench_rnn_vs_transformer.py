"""The article's parallelism claim on a GPU: cuDNN's LSTM against one Transformer layer.

Throughput (tokens per second, forward+backward) of ``torch.nn.LSTM`` (cuDNN's fused kernel)
and one Transformer encoder layer (``course_lib.nn.TransformerBlock``, fused attention) of the
same parameter count, both in bf16, for T from 128 to 4096. Every batch holds the same number
of tokens, enough to fill an H200, so b = tokens / T: the Transformer layer processes all
tokens of a batch at once, while the LSTM must take T steps of b tokens each.

On a machine without CUDA, ``course bench`` reports that it needs a GPU and measures nothing.
``python benchmarks/bench_rnn_vs_transformer.py --smoke`` runs tiny sizes on any device, to
test the code path; it writes to a temporary folder unless ``--out`` is given.
About a minute on one H200; a deadline stops it before two.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from course_lib.bench import environment, median_time, write_results
from course_lib.nn import TransformerBlock

NAME = "rnn_vs_transformer"
FULL = dict(width=1024, head_dim=128, tokens=2**18, lengths=[128, 256, 512, 1024, 2048, 4096], min_run_time=0.2)
SMOKE = dict(width=32, head_dim=16, tokens=2**9, lengths=[16, 32], min_run_time=0.01)
DEADLINE_S = 100  # stop adding lengths after this, so that a run stays under two minutes


def build_models(width: int, head_dim: int, dtype: torch.dtype, device: torch.device) -> dict[str, torch.nn.Module]:
    """An LSTM of hidden size e has 8e^2 weights (4 gates x (W_ih + W_hh)); a Transformer layer
    with a feed-forward width of 2e has the same: 4e^2 in attention and 4e^2 in the MLP."""
    lstm = _lstm_in_first_dtype_that_runs(width, device, [dtype, torch.float16, torch.float32])
    block = TransformerBlock(embed_dim=width, num_heads=width // head_dim, hidden_dim=2 * width, impl="fused")
    return {"cuDNN LSTM": lstm, "Transformer layer": block.to(device, dtype)}


def _lstm_in_first_dtype_that_runs(width: int, device: torch.device, dtypes) -> torch.nn.LSTM:
    # cuDNN takes bf16 RNN inputs only from version 9.13 on, and oneDNN (the CPU) not at all:
    # fall back to the next dtype rather than fail; the result records the one used.
    for dtype in dtypes:
        lstm = torch.nn.LSTM(width, width, batch_first=True).to(device, dtype)
        try:
            _forward_backward(lstm, torch.randn(2, 3, width, device=device, dtype=dtype))
            lstm.zero_grad(set_to_none=True)
            return lstm
        except RuntimeError as err:
            print(f"{NAME}: LSTM in {dtype} does not run here ({str(err).splitlines()[0][:80]}); trying the next")
    raise RuntimeError(f"torch.nn.LSTM runs in none of {dtypes} on {device}")


def _forward_backward(model: torch.nn.Module, x: torch.Tensor) -> None:
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out  # the LSTM also returns its final state
    out.float().sum().backward()


def measure(width, head_dim, tokens, lengths, min_run_time, device, dtype=torch.bfloat16) -> dict:
    models = build_models(width, head_dim, dtype, device)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    dtypes = {name: str(next(m.parameters()).dtype).removeprefix("torch.") for name, m in models.items()}
    rows, start, note = [], time.perf_counter(), ""
    for t in lengths:
        if time.perf_counter() - start > DEADLINE_S:
            note = f"stopped before T={t}: past the {DEADLINE_S} s deadline"
            break
        batch = max(1, tokens // t)
        x = torch.randn(batch, t, width, device=device, dtype=dtype)
        row = {"T": t, "batch": batch}
        for name, model in models.items():
            row[f"{name} tok/s"] = batch * t / median_time(lambda model=model: _forward_backward(model, x), min_run_time)
            for p in model.parameters():
                p.grad = None  # don't let gradient buffers pile up across lengths
        row["Transformer/LSTM throughput"] = row["Transformer layer tok/s"] / row["cuDNN LSTM tok/s"]
        rows.append(row)
        del x
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if not rows:
        raise RuntimeError("no length was measured")
    first, last = rows[0], rows[-1]
    goals = [f"Transformer layer / cuDNN LSTM tokens per second: {first['Transformer/LSTM throughput']:.1f}x at "
             f"T={first['T']}, {last['Transformer/LSTM throughput']:.1f}x at T={last['T']}"]
    return {
        "title": (f"cuDNN LSTM ({dtypes['cuDNN LSTM']}) vs one Transformer layer ({dtypes['Transformer layer']}), "
                  f"width {width}, {tokens} tokens per batch, forward+backward"),
        "environment": environment(device),
        "parameters": params,
        "dtypes": dtypes,
        "rows": rows,
        "goals": goals + ([note] if note else []),
    }


def run(quick: bool = False, device: torch.device = torch.device("cpu")) -> dict:
    if device.type != "cuda":
        return {"title": "cuDNN LSTM vs one Transformer layer", "skipped": "needs a CUDA GPU", "rows": [],
                "environment": environment(device)}
    sizes = dict(FULL, lengths=[128, 1024, 4096]) if quick else FULL
    return measure(device=device, **sizes)


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    rows = result["rows"]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ts = [r["T"] for r in rows]
    for name, style in [("cuDNN LSTM", "o-"), ("Transformer layer", "^-")]:
        millions = result["parameters"][name] / 1e6
        ax.plot(ts, [r[f"{name} tok/s"] for r in rows], style,
                label=f"{name} ({millions:.1f}M weights, {result['dtypes'][name]})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T (batch = tokens / T)")
    ax.set_ylabel("tokens / second (fwd+bwd)")
    ax.set_title(f"Sequential vs parallel on {result['environment'].get('gpu', result['environment']['device'])}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device, to test the code path")
    parser.add_argument("--out", help="folder for the results (default: benchmarks/results, or a temporary "
                                      "folder with --smoke)")
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.smoke:
        result = measure(device=device, **SMOKE)
        result["title"] = "[smoke test, tiny sizes] " + result["title"]
    else:
        result = run(device=device)
        if result.get("skipped"):
            print(f"{NAME}: skipped ({result['skipped']})")
            return None
    out = Path(args.out or (tempfile.mkdtemp(prefix="bench_smoke_") if args.smoke else Path(__file__).parent / "results"))
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    path = write_results(NAME + suffix, result, out)
    plot(result, path.with_suffix(".png"))
    for goal in result["goals"]:
        print(f"{NAME}: {goal}")
    print(f"{NAME}: -> {path}")
    return path


if __name__ == "__main__":
    main()
