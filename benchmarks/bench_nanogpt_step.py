"""One GPT training step: course_lib's ``Decoder`` vs nanoGPT's ``model.py``.

nanoGPT's file is kept unchanged in ``benchmarks/reference/nanogpt_model.py`` (MIT licence,
source and commit in its header). Both models get nanoGPT's configuration from its README's
CPU run (4 layers, 4 heads, width 128, block 64, batch 12, no dropout, exact GELU, tied
embeddings) and the same weights (copied from nanoGPT's into ours, and checked through the
loss), see the same batch and run the same step: forward, cross-entropy, backward, AdamW.
The two are timed alternately in one process. Goal: ours at most 1.0x nanoGPT's time.
"""
from __future__ import annotations

import contextlib
import io
import statistics

import torch
import torch.nn.functional as F

from course_lib.bench import environment, timed_call
from course_lib.models import Decoder, DecoderConfig

NAME = "nanogpt_step"


def _nanogpt():
    from .reference import nanogpt_model  # imported when needed: the runner imports every benchmark

    return nanogpt_model


def models(vocab: int, embed_dim: int, layers: int, heads: int, block: int, device):
    """nanoGPT's ``GPT`` and a ``Decoder`` holding the same weights, both in training mode."""
    nano = _nanogpt()
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        theirs = nano.GPT(nano.GPTConfig(block_size=block, vocab_size=vocab, n_layer=layers, n_head=heads,
                                         n_embd=embed_dim, dropout=0.0, bias=True))
    ours = Decoder(DecoderConfig(vocab_size=vocab, embed_dim=embed_dim, num_layers=layers, num_heads=heads,
                                 hidden_dim=4 * embed_dim, max_len=block, activation="gelu"))
    sd, e = theirs.state_dict(), embed_dim
    state = {"token_embed.weight": sd["transformer.wte.weight"], "pos_embed.weight": sd["transformer.wpe.weight"],
             "final_norm.weight": sd["transformer.ln_f.weight"], "final_norm.bias": sd["transformer.ln_f.bias"]}
    for i in range(layers):
        src, dst = f"transformer.h.{i}.", f"blocks.{i}."
        for name, part in (("q", 0), ("k", 1), ("v", 2)):  # nanoGPT's c_attn is q, k, v stacked
            state[dst + f"self_attn.{name}_proj.weight"] = sd[src + "attn.c_attn.weight"][part * e:(part + 1) * e]
            state[dst + f"self_attn.{name}_proj.bias"] = sd[src + "attn.c_attn.bias"][part * e:(part + 1) * e]
        for a, b in (("ln_1", "self_attn_norm"), ("ln_2", "ffn_norm"), ("attn.c_proj", "self_attn.out_proj"),
                     ("mlp.c_fc", "ffn.up_proj"), ("mlp.c_proj", "ffn.down_proj")):
            for p in ("weight", "bias"):
                state[dst + f"{b}.{p}"] = sd[src + f"{a}.{p}"]
    ours.load_state_dict(state, strict=True)
    return ours.to(device).train(), theirs.to(device).train()


def _step(model, optimizer, x, y, nanogpt: bool):
    def run():
        if nanogpt:
            _, loss = model(x, y)
        else:
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return run


def run(quick: bool = False, device: torch.device = torch.device("cpu"), smoke: bool = False) -> dict:
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # on a shared machine, several threads per op make the timings erratic
    try:
        return _run(quick, device, smoke)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: torch.device, smoke: bool) -> dict:
    # (vocab, width, layers, heads, block, batch): nanoGPT's README CPU run (Shakespeare
    # characters), then the same model with GPT-2's vocabulary, where the head dominates.
    shapes = [(65, 128, 4, 4, 64, 12), (50304, 128, 4, 4, 64, 12)]
    if smoke:
        shapes = [(65, 32, 2, 2, 16, 2)]
    rounds = 3 if smoke else (10 if quick else 30)
    rows = []
    for vocab, embed_dim, layers, heads, block, batch in shapes:
        ours, theirs = models(vocab, embed_dim, layers, heads, block, device)
        g = torch.Generator().manual_seed(1)
        x, y = (torch.randint(0, vocab, (batch, block), generator=g).to(device) for _ in range(2))
        with torch.no_grad():
            loss_ours = F.cross_entropy(ours(x).flatten(0, 1), y.flatten()).item()
            loss_theirs = theirs(x, y)[1].item()
        step_ours = _step(ours, torch.optim.AdamW(ours.parameters(), lr=1e-4), x, y, nanogpt=False)
        step_theirs = _step(theirs, torch.optim.AdamW(theirs.parameters(), lr=1e-4), x, y, nanogpt=True)
        step_ours(); step_theirs()  # warm-up
        # Alternate single steps so that a burst of load on a shared machine hits both, and
        # keep each side's fastest step: the least disturbed measurement of the same work.
        times_ours, times_theirs = [], []
        for _ in range(rounds):
            times_ours.append(timed_call(step_ours, device)[0])
            times_theirs.append(timed_call(step_theirs, device)[0])
        t_ours, t_theirs = min(times_ours), min(times_theirs)
        rows.append({
            "vocab": vocab, "embed_dim": embed_dim, "layers": layers, "T": block, "batch": batch,
            "params_M": sum(p.numel() for p in ours.parameters()) / 1e6,
            "same_loss": abs(loss_ours - loss_theirs) < 1e-4,
            "ours_ms": t_ours * 1e3, "nanogpt_ms": t_theirs * 1e3, "ratio": t_ours / t_theirs,
            # The same comparison made per round (adjacent steps), then the median: a second
            # view that a burst of load on one side moves little.
            "median_round_ratio": statistics.median(a / b for a, b in zip(times_ours, times_theirs)),
        })
    worst = max(r["ratio"] for r in rows)
    return {
        "title": "GPT training step: course_lib Decoder vs nanoGPT's model.py, forward+backward+AdamW",
        "environment": environment(device),
        "rows": rows,
        "goals": [
            f"ours at most 1.0x the time of nanoGPT's: worst ratio {worst:.2f}x " + ("met" if worst <= 1.0 else "missed"),
            "same weights give the same loss: " + ("yes" if all(r["same_loss"] for r in rows) else "NO"),
        ],
    }


def plot(result: dict, path):
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"vocab {r['vocab']}\nT={r['T']} b={r['batch']}" for r in rows]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 3.4))
    ax.bar(range(len(rows)), [r["ratio"] for r in rows], color="tab:blue")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("course_lib time / nanoGPT time")
    ax.set_title("GPT training step against nanoGPT")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
