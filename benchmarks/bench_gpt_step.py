"""One GPT training step: course_lib's Decoder vs Hugging Face's GPT2LMHeadModel (SDPA attention).

Both models have the same GPT-2 configuration and the same weights (copied with
``Decoder.from_hf``), see the same batch and run the same step: forward, cross-entropy on
the logits, backward, AdamW. The two are timed alternately, side by side in one process.
Goal: ours at most 1.0x the time of Hugging Face's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.bench import environment, timed_call
from course_lib.models import Decoder

NAME = "gpt_step"


def _models(vocab: int, embed_dim: int, layers: int, heads: int, max_len: int, device):
    import transformers

    config = transformers.GPT2Config(
        vocab_size=vocab, n_embd=embed_dim, n_layer=layers, n_head=heads, n_positions=max_len,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    theirs = transformers.GPT2LMHeadModel(config).to(device).train()
    ours = Decoder.from_hf(theirs).to(device).train()
    return ours, theirs


def _step(model, optimizer, ids, hf: bool, amp: bool):
    device_type = ids.device.type

    def run():
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            logits = model(ids).logits if hf else model(ids)  # b t v
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return run


def profile_table(fn, device: torch.device, rows: int = 10) -> str:
    """The ``rows`` most expensive operators of a few calls of ``fn``, as torch.profiler prints them."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=48)


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
    if smoke:  # every code path at tiny sizes, the profiler included
        shapes, precisions = [(64, 32, 2, 2, 16, 2)], [False, True] if device.type == "cuda" else [False]
    elif device.type == "cuda":
        shapes = [(8192, 512, 8, 8, 512, 16)] if quick else [(8192, 512, 8, 8, 512, 16), (50257, 768, 12, 12, 1024, 8)]
        precisions = [False, True]
    else:
        shapes = [(4096, 128, 4, 4, 128, 16), (8192, 256, 4, 4, 128, 8)]
        if not quick:
            shapes += [(8192, 256, 4, 4, 256, 8), (8192, 384, 6, 6, 512, 4)]
        precisions = [False]
    rounds = 2 if smoke else (5 if quick else 10)
    rows, notes = [], []
    for vocab, embed_dim, layers, heads, t, batch in shapes:
        ours, theirs = _models(vocab, embed_dim, layers, heads, t, device)
        ids = torch.randint(0, vocab, (batch, t), generator=torch.Generator().manual_seed(1)).to(device)
        for amp in precisions:
            opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
            opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)
            step_ours = _step(ours, opt_ours, ids, hf=False, amp=amp)
            step_theirs = _step(theirs, opt_theirs, ids, hf=True, amp=amp)
            # Alternate single steps so that a burst of load on a shared machine hits both, and
            # keep each side's fastest step: the least disturbed measurement of the same work.
            step_ours(); step_theirs()  # warm-up
            times_ours, times_theirs = [], []
            for _ in range(rounds):
                times_ours.append(timed_call(step_ours, device)[0])
                times_theirs.append(timed_call(step_theirs, device)[0])
            t_ours, t_theirs = min(times_ours), min(times_theirs)
            params = sum(p.numel() for p in ours.parameters())
            if t_ours > t_theirs or smoke:  # a loss: record where each side spends its time
                label = f"e={embed_dim} L={layers} T={t} b={batch} {'bf16 autocast' if amp else 'fp32'}"
                for who, fn in (("course_lib", step_ours), ("Hugging Face", step_theirs)):
                    try:
                        table = profile_table(fn, device)
                    except Exception as err:  # noqa: BLE001 - the timings above must still be written
                        table = f"(the profiler failed here: {type(err).__name__}: {err})"
                    notes.append(f"torch.profiler, top 10 of 3 steps, {who}, {label}:\n\n```\n{table}\n```")
            rows.append({
                "vocab": vocab, "embed_dim": embed_dim, "layers": layers, "T": t, "batch": batch,
                "dtype": "bf16 autocast" if amp else "fp32", "params_M": params / 1e6,
                "ours_ms": t_ours * 1e3, "hf_ms": t_theirs * 1e3, "ratio": t_ours / t_theirs,
            })
    worst = max(r["ratio"] for r in rows)
    return {
        "title": "GPT training step: course_lib Decoder vs transformers GPT2LMHeadModel (sdpa), forward+backward+AdamW",
        "environment": environment(device),
        "rows": rows,
        "goals": [f"ours at most 1.0x the time of Hugging Face's: worst ratio {worst:.2f}x "
                  + ("met" if worst <= 1.0 else "missed")],
        "notes": notes,
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"e={r['embed_dim']} L={r['layers']}\nT={r['T']} b={r['batch']}\n{r['dtype']}" for r in rows]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 3.4))
    ax.bar(range(len(rows)), [r["ratio"] for r in rows], color="tab:blue")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("course_lib time / HF time")
    ax.set_title("GPT training step against Hugging Face")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
