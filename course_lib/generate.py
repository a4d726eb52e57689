"""Decoding: turning next-token logits into a sequence.

Shape legend
    b  batch            k  beams per batch item        v  vocabulary
    t  tokens so far (prompt + generated)              n  new tokens fed to one step

A model hands these helpers a *step function*; they only ever see logits:

    greedy          the most likely token
    temperature     sample from softmax(logits / T)
    top-k           sample among the k most likely tokens                (Fan et al., 2018)
    top-p           sample among the fewest tokens whose mass is >= p    (Holtzman et al., 2020)
    beam search     keep the k best partial sequences by summed log-probability and rank
                    finished ones by  sum_logp / length ** length_penalty  (Wu et al., 2016)

``generate_tokens`` calls ``step(new_ids (b n)) -> logits (b v)`` first with the prompt and
then with one token at a time, so a step function may keep a KV cache (or simply
re-run the whole prefix). ``beam_search`` by default re-runs the whole prefix of every
beam at each step, ``step(seqs (b*k t)) -> logits (b*k v)``: beams are re-ordered at
every step, and recomputing is the simplest correct way to keep their states apart.
Given a ``reorder(parents (b*k,))`` callback it feeds only the new tokens instead, and
calls ``reorder`` after each step so that a KV cache can follow its beams
(``KVCache.reorder``). ``replayable`` turns a fixed-shape step into a CUDA graph replay.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

NEG_INF = float("-inf")
# Beam search marks impossible choices with a large finite number rather than -inf so
# that sums and divisions stay finite; the value (and arithmetic) matches Hugging Face's.
_BEAM_NEG = -1.0e9
# On an accelerator, check for "every row has stopped" once per this many steps.
SYNC_EVERY = 16


def top_k_filter(logits: Tensor, k: int | None) -> Tensor:
    """Set every logit below the ``k``-th largest to ``-inf`` (ties at the threshold stay).

    ``logits (..., v)``; ``k = None`` or ``k >= v`` keeps everything.
    """
    if k is None or k >= logits.shape[-1]:
        return logits
    if k <= 0:
        raise ValueError(f"top_k must be positive, got {k}")
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # ... 1
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: Tensor, p: float | None) -> Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least ``p``.

    A token survives when the mass of the tokens *more* likely than it is still below ``p``,
    so the most likely token always survives. ``logits (..., v)``.
    """
    if p is None or p >= 1.0:
        return logits
    if p <= 0.0:
        raise ValueError(f"top_p must lie in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.float().softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, NEG_INF)


def sample_next_token(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick one token per row of ``logits (b v)``; returns ``(b,)``.

    ``temperature = 0`` is greedy decoding. Otherwise the logits are divided by the
    temperature, filtered by top-k and then top-p (the order Hugging Face uses), and
    sampled from.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (b, v), got {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    scaled = top_p_filter(top_k_filter(scaled, top_k), top_p)
    probs = scaled.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate_tokens(
    step: Callable[[Tensor], Tensor],
    prompt: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_tokens: Sequence[int] = (),
    pad_id: int | None = None,
    generator: torch.Generator | None = None,
    logits_filter: Callable[[Tensor], Tensor] | None = None,
    sync_every: int | None = None,
) -> Tensor:
    """The autoregressive loop: ``prompt (b t)`` -> ``(b, t + n)``, ``n <= max_new_tokens``.

    Args:
        step: ``step(new_ids (b n)) -> logits (b v)`` for the position after ``new_ids``.
        stop_tokens: a row that emits one of these is finished; from then on it receives
            ``pad_id`` (default: the first stop token). The loop ends early once every row
            is finished.
        logits_filter: applied to each step's logits before sampling, e.g. to allow only
            image tokens.
        sync_every: how often the host asks whether every row has finished. Asking makes it
            wait for the device: free on the CPU (the default there is 1), but on a GPU it
            stalls the queue of kernels, so there the default is ``SYNC_EVERY`` steps and the
            few padding-only steps run past the end are cut off. The output is the same.
    """
    if prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt must have shape (b, t) with t >= 1, got {tuple(prompt.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if sync_every is not None and sync_every < 1:
        raise ValueError(f"sync_every must be >= 1, got {sync_every}")
    stops = torch.tensor(list(stop_tokens), dtype=prompt.dtype).to(prompt.device) if len(stop_tokens) else None
    if pad_id is None and len(stop_tokens):
        pad_id = int(stop_tokens[0])
    if max_new_tokens == 0:
        return prompt
    b, t = prompt.shape
    # One buffer for the whole output, written a column per step (no growing torch.cat).
    ids = prompt.new_empty(b, t + max_new_tokens)
    ids[:, :t] = prompt
    finished = torch.zeros(b, dtype=torch.bool, device=prompt.device)
    all_finished = torch.zeros(max_new_tokens, dtype=torch.bool, device=prompt.device)  # after step i
    if sync_every is None:
        sync_every = 1 if prompt.device.type == "cpu" else SYNC_EVERY
    logits = step(prompt)
    for i in range(max_new_tokens):
        if logits_filter is not None:
            logits = logits_filter(logits)
        next_token = sample_next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                                       generator=generator)  # b
        if stops is not None:
            next_token = torch.where(finished, pad_id, next_token)
            finished |= torch.isin(next_token, stops)
            all_finished[i] = finished.all()
        ids[:, t + i] = next_token
        if i == max_new_tokens - 1 or (stops is not None and (i + 1) % sync_every == 0 and bool(all_finished[i])):
            break
        logits = step(next_token[:, None])
    n = i + 1
    if stops is not None:  # the output ends at the step where every row had finished
        done = all_finished[:n].nonzero()
        n = int(done[0, 0]) + 1 if len(done) else n
    return ids[:, : t + n].contiguous()  # a copy only when the output stopped early


def replayable(body: Callable[[], Tensor], device: torch.device) -> Callable[[], Tensor]:
    """``body`` recorded once as a CUDA graph and replayed at each call, on a CUDA device;
    elsewhere ``body`` itself. ``body`` must read and write only tensors that stay in place
    (fixed shapes, no host reads); the returned callable gives a copy of its output."""
    if device.type != "cuda":
        return body
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):  # warm up off the main stream before capture, as CUDA graphs need
        for _ in range(2):
            body()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = body()

    def replay() -> Tensor:
        graph.replay()
        return out.clone()  # the next replay overwrites `out`

    return replay


@torch.no_grad()
def beam_search(
    step: Callable[[Tensor], Tensor],
    prompt: Tensor,
    *,
    num_beams: int,
    max_new_tokens: int,
    eos_id: int | None,
    pad_id: int,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    reorder: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Beam search from ``prompt (b t)``; returns the best hypothesis per row, ``(b, t + n)``.

    A hypothesis finishes when it emits ``eos_id`` or reaches ``t + max_new_tokens``
    tokens; finished ones are ranked by ``sum_logp / n_generated ** length_penalty``
    (``length_penalty > 0`` favours longer outputs). Rows shorter than the longest
    output are padded with ``pad_id``.

    ``early_stopping``: ``True`` stops a row as soon as it has ``num_beams`` finished
    hypotheses; ``False`` stops once the best running beam, scored at its current
    length, cannot beat the worst finished one; ``"never"`` does the same check at the
    most favourable length. These are the rules of Hugging Face's ``generate``, so
    both give the same sequences for the same model.

    ``reorder``: ``None`` calls ``step`` with every beam's whole sequence. Otherwise ``step``
    gets the prompt ``(b*k, t)`` once and then only each beam's newest token ``(b*k, 1)``,
    and after every step ``reorder(parents (b*k,))`` says which old row each beam now
    continues, so a cache of the prefixes can be permuted to match.
    """
    if num_beams < 1 or max_new_tokens < 1:
        raise ValueError(f"num_beams and max_new_tokens must be >= 1, got {num_beams}, {max_new_tokens}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    b, t0 = prompt.shape
    k, device = num_beams, prompt.device
    max_len = t0 + max_new_tokens
    # Fixed-size buffers (b, k, max_len) padded with pad_id; column `cur` is written at each step.
    running = prompt.new_full((b, k, max_len), pad_id)
    running[:, :, :t0] = prompt[:, None]
    running_scores = torch.zeros(b, k, device=device)
    running_scores[:, 1:] = _BEAM_NEG  # the k beams start identical: expand only the first
    finished = running.clone()
    finished_scores = torch.full((b, k), _BEAM_NEG, device=device)
    finished_len = torch.zeros(b, k, dtype=torch.long, device=device)
    is_finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    can_improve = torch.ones(b, 1, dtype=torch.bool, device=device)
    # 2k candidates, so that k of them are still running even if k end with eos.
    num_candidates = 2 * k
    in_top_k = torch.arange(num_candidates, device=device) < k

    for i in range(max_new_tokens):
        cur = t0 + i
        start = 0 if reorder is None or i == 0 else cur - 1  # with a cache, only the newest token is new
        logits = step(running[:, :, start:cur].reshape(b * k, cur - start)).float()  # (b k) v
        vocab = logits.shape[-1]
        log_probs = logits.log_softmax(dim=-1).view(b, k, vocab) + running_scores[..., None]
        cand_scores, flat = log_probs.view(b, k * vocab).topk(num_candidates, dim=-1)  # b 2k
        cand_beam, cand_token = flat // vocab, flat % vocab
        cand = running.gather(1, cand_beam[..., None].expand(-1, -1, max_len)).clone()  # b 2k max_len
        cand[:, :, cur] = cand_token
        ends = torch.full_like(cand_token, cur + 1 == max_len, dtype=torch.bool)
        if eos_id is not None:
            ends |= cand_token == eos_id

        # Running beams: the best k candidates that did not end.
        live_scores = cand_scores + ends.float() * _BEAM_NEG
        keep = live_scores.topk(k, dim=-1).indices  # b k
        running = cand.gather(1, keep[..., None].expand(-1, -1, max_len))
        running_scores = live_scores.gather(1, keep)
        if reorder is not None:
            parents = cand_beam.gather(1, keep) + torch.arange(b, device=device)[:, None] * k  # b k, rows of (b k)
            reorder(parents.reshape(b * k))

        # Finished pool: candidates among the top k that ended, if they beat the pool.
        n_generated = i + 1
        just_finished = ends & in_top_k
        scores = cand_scores / n_generated**length_penalty
        pool_full = is_finished.all(dim=-1, keepdim=True) & (early_stopping is True)
        scores = scores + pool_full.float() * _BEAM_NEG + (~can_improve).float() * _BEAM_NEG
        scores = scores + (~just_finished).float() * _BEAM_NEG
        merged_scores = torch.cat([finished_scores, scores], dim=1)  # b 3k
        best = merged_scores.topk(k, dim=-1).indices
        finished = torch.cat([finished, cand], dim=1).gather(1, best[..., None].expand(-1, -1, max_len))
        finished_scores = merged_scores.gather(1, best)
        new_len = torch.full_like(cand_token, n_generated)
        finished_len = torch.cat([finished_len, new_len], dim=1).gather(1, best)
        is_finished = torch.cat([is_finished, just_finished], dim=1).gather(1, best)

        # Can a running beam still beat the worst finished hypothesis?
        best_length = max_new_tokens if (early_stopping == "never" and length_penalty > 0) else n_generated
        best_running = running_scores[:, :1] / best_length**length_penalty
        worst_finished = torch.where(is_finished, finished_scores.min(dim=-1, keepdim=True).values, _BEAM_NEG)
        can_improve = can_improve & (best_running > worst_finished).any(dim=-1, keepdim=True)
        if not bool(can_improve.any()):
            break
        if early_stopping is True and bool(is_finished.all()):
            break
        if bool(ends.all()):
            break

    out_len = t0 + int(finished_len[:, 0].max())
    return finished[:, 0, :out_len]
