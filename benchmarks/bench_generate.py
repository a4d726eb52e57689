"""Greedy generation: course_lib's ``Decoder.generate`` vs Hugging Face's ``generate``.

One ``GPT2LMHeadModel`` is built from a config (random weights, nothing downloaded) and
copied into a ``Decoder`` with ``Decoder.from_hf``. Both decode greedily with a KV cache
(``use_cache=True``, ``do_sample=False``) from the same prompt, the two timed alternately
in one process, each keeping its best run. The tokens are compared: they must be identical
in float32. Goal: our tokens per second at least those of Hugging Face's (ratio >= 1.0) at
batch 1 and 8. On a GPU (GPT-2 small in bf16) ours also runs with ``cuda_graph=True``,
which replays each decoding step as one CUDA graph.
"""
from __future__ import annotations

import torch

from course_lib.bench import environment, timed_call
from course_lib.models import Decoder

NAME = "generate"


def gpt2_pair(shape: dict, device: torch.device, dtype: torch.dtype):
    """A random ``GPT2LMHeadModel`` of ``shape`` and the same weights in a ``Decoder``, both eval."""
    import transformers

    config = transformers.GPT2Config(
        vocab_size=shape["vocab"], n_embd=shape["embed_dim"], n_layer=shape["layers"], n_head=shape["heads"],
        n_positions=shape["max_len"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0, pad_token_id=0, attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    theirs = transformers.GPT2LMHeadModel(config).eval()
    ours = Decoder.from_hf(theirs)
    theirs.generation_config.eos_token_id = None  # decode exactly max_new_tokens tokens
    return ours.to(device, dtype), theirs.to(device, dtype)


def hf_generate(model, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                          pad_token_id=0, eos_token_id=None)


def run(quick: bool = False, device: torch.device = torch.device("cpu"), smoke: bool = False) -> dict:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return {"skipped": "transformers is not installed"}
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # on a shared machine, several threads per op make the timings erratic
    try:
        return _run(quick, device, smoke)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: torch.device, smoke: bool) -> dict:
    if device.type == "cuda":  # GPT-2 small, as served
        shape = dict(vocab=50257, embed_dim=768, layers=12, heads=12, max_len=1024)
        dtype = torch.bfloat16
    else:
        shape = dict(vocab=4096, embed_dim=256, layers=4, heads=4, max_len=512)
        dtype = torch.float32
    prompt_len, new_tokens, batches = 16, 256, (1, 8)
    if smoke:  # every code path, tiny sizes: for checking the script, not for figures
        shape = dict(vocab=64, embed_dim=32, layers=2, heads=2, max_len=64)
        new_tokens, batches = 8, (1, 2)
    ours, theirs = gpt2_pair(shape, device, dtype)
    rounds = 1 if (quick or smoke) else (3 if device.type == "cuda" else 5)
    # On a GPU, also our step replayed as one CUDA graph: at small batches launching a few
    # hundred kernels from Python per token costs more than running them.
    graph = device.type == "cuda" or smoke
    rows = []
    for batch in batches:
        ids = torch.randint(1, shape["vocab"], (batch, prompt_len), generator=torch.Generator().manual_seed(batch))
        ids = ids.to(device)
        runs = {"ours": lambda: ours.generate(ids, new_tokens),
                "hf": lambda: hf_generate(theirs, ids, new_tokens)}
        if graph:
            runs["ours_graph"] = lambda: ours.generate(ids, new_tokens, cuda_graph=True)
        times, outs = {name: [] for name in runs}, {}
        with torch.no_grad():
            for fn in runs.values():
                fn()  # warm-up: allocation, kernel selection
            for _ in range(rounds):  # alternate, so that a burst of load hits every variant
                for name, fn in runs.items():
                    t, outs[name] = timed_call(fn, device)
                    times[name].append(t)
        best = {name: min(ts) for name, ts in times.items()}
        row = {"batch": batch, "new_tokens": new_tokens, "dtype": str(dtype).removeprefix("torch.")}
        for name in runs:
            row[f"{name}_tok_s"] = batch * new_tokens / best[name]
        row["speed_ratio"] = best["hf"] / best["ours"]
        if graph:
            row["graph_speed_ratio"] = best["hf"] / best["ours_graph"]
        for name in [n for n in runs if n != "hf"]:
            same = outs[name].shape == outs["hf"].shape and torch.equal(outs[name], outs["hf"])
            agree = 1.0 if same else (outs[name][:, prompt_len:] == outs["hf"][:, prompt_len:]).float().mean().item()
            row["same_tokens" if name == "ours" else "graph_same_tokens"] = same
            row["tokens_agreeing" if name == "ours" else "graph_tokens_agreeing"] = agree
        rows.append(row)
    worst = min(r["speed_ratio"] for r in rows)
    params = sum(p.numel() for p in ours.parameters())
    goals = [f"ours at least 1.0x Hugging Face's tokens/s: worst {worst:.2f}x " + ("met" if worst >= 1.0 else "missed")]
    if graph:
        worst_graph = min(r["graph_speed_ratio"] for r in rows)
        goals.append(f"ours with a CUDA graph at least 1.0x: worst {worst_graph:.2f}x "
                     + ("met" if worst_graph >= 1.0 else "missed"))
    same = all(v for r in rows for k, v in r.items() if k.endswith("same_tokens"))
    goals.append("tokens identical to Hugging Face's: " + ("yes" if same else "NO")
                 + ("" if dtype == torch.float32 else " (bf16: the two run different kernels, whose rounding "
                    "can flip a near-tie of random weights)"))
    return {
        "title": (f"Greedy generation with a KV cache: course_lib vs transformers generate (GPT-2 shape "
                  f"e={shape['embed_dim']}, L={shape['layers']}, {params / 1e6:.1f}M params, prompt {prompt_len})"),
        "environment": environment(device),
        "rows": rows,
        "goals": goals,
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"batch {r['batch']}" for r in rows]
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    x = range(len(rows))
    series = [("ours_tok_s", "course_lib"), ("ours_graph_tok_s", "course_lib, CUDA graph"), ("hf_tok_s", "transformers")]
    series = [(key, label) for key, label in series if key in rows[0]]
    width = 0.8 / len(series)
    for j, (key, label) in enumerate(series):
        ax.bar([i + (j - (len(series) - 1) / 2) * width for i in x], [r[key] for r in rows], width=width, label=label)
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("generated tokens per second")
    ax.set_title("Greedy decoding with a KV cache")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
