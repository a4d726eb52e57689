"""The encoder-decoder assignment graded end to end: typical mistakes lose exactly the points of
the parts they break, shortcuts are caught, and other correct implementations get full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

INIT = """
    kv_dim = embed_dim if kv_dim is None else kv_dim
    self.num_heads = num_heads
    self.head_dim = embed_dim // num_heads
    self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
    self.k_proj = nn.Linear(kv_dim, embed_dim, bias=bias)
    self.v_proj = nn.Linear(kv_dim, embed_dim, bias=bias)
    self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
"""

# --- Typical mistakes -------------------------------------------------------------------

# Self-attention habits: keys and values taken from the decoder states instead of the context.
# (With kv_dim != embed_dim it would crash; the learner "fixes" the shapes to embed_dim.)
KEYS_FROM_X_INIT = INIT.replace("nn.Linear(kv_dim, embed_dim", "nn.Linear(embed_dim, embed_dim")
KEYS_FROM_X = """
    q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.num_heads)
    k = rearrange(self.k_proj(x), "b s (h d) -> b h s d", h=self.num_heads)
    v = rearrange(self.v_proj(x), "b s (h d) -> b h s d", h=self.num_heads)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)).softmax(dim=-1)
    return self.out_proj(rearrange(weights @ v, "b h t d -> b t (h d)")), weights
"""

# Forgets to shift: the decoder reads the labels it must predict (with -100 made padding).
# shift_right itself is right, so only the training step loses its points.
NO_SHIFT = """
    optimizer.zero_grad()
    logits = model(src, labels.masked_fill(labels == -100, pad_id))
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()
"""

# Stops as soon as num_beams hypotheses have finished (early_stopping=True). The visible
# examples cannot tell the two rules apart; the hidden comparison with course_lib can.
STOP_WHEN_POOL_FULL = """
    running = [(prompt.tolist(), 0.0)]
    finished = []
    for i in range(1, max_new_tokens + 1):
        seqs = torch.tensor([ids for ids, _ in running])
        scores = torch.tensor([s for _, s in running])[:, None] + step(seqs).float().log_softmax(-1)
        vocab = scores.shape[-1]
        new_running = []
        for rank, index in enumerate(scores.flatten().argsort(descending=True).tolist()):
            beam, token = divmod(index, vocab)
            ids, score = running[beam][0] + [token], scores[beam, token].item()
            if token == eos_id or i == max_new_tokens:
                if rank < num_beams:
                    finished.append((ids, score / i**length_penalty))
            elif len(new_running) < num_beams:
                new_running.append((ids, score))
        running = new_running
        if len(finished) >= num_beams:
            break
    ids, score = max(finished, key=lambda f: f[1])
    return torch.tensor(ids), score
"""

# --- Correct alternatives ---------------------------------------------------------------

# Heads by view/transpose, einsum, a finite "minus infinity", F.softmax.
CROSS_ALTERNATIVE = """
    B, T, E = x.shape
    S = context.shape[1]
    H, D = self.num_heads, self.head_dim
    q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
    k = self.k_proj(context).view(B, S, H, D).transpose(1, 2)
    v = self.v_proj(context).view(B, S, H, D).transpose(1, 2)
    sc = torch.einsum("bhtd,bhsd->bhts", q, k) * D ** -0.5
    if context_mask is not None:
        sc = torch.where(context_mask, sc, torch.finfo(sc.dtype).min)
    w = F.softmax(sc, dim=-1)
    out = torch.einsum("bhts,bhsd->bhtd", w, v).transpose(1, 2).reshape(B, T, E)
    return self.out_proj(out), w
"""

SHIFT_ALTERNATIVE = """
    start = torch.full((labels.shape[0], 1), start_id, dtype=labels.dtype)
    out = torch.cat([start, labels[:, :-1]], dim=1)
    return torch.where(out == -100, torch.full_like(out, pad_id), out)
"""

# Log-softmax and a masked mean written out; set_to_none=False zeroing.
STEP_ALTERNATIVE = """
    for p in model.parameters():
        if p.grad is not None:
            p.grad.zero_()
    log_probs = model(src, shift_right(labels, start_id, pad_id)).log_softmax(-1)
    keep = labels != -100
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = -(picked * keep).sum() / keep.sum()
    loss.backward()
    optimizer.step()
    return float(loss)
"""

# Vectorised: top-k over the flattened scores instead of a Python loop over the ranking, and
# the pool kept as a plain list checked with its k-th best.
BEAM_ALTERNATIVE = """
    beams = prompt[None]  # n t
    beam_scores = torch.zeros(1)
    pool = []
    for i in range(1, max_new_tokens + 1):
        total = beam_scores[:, None] + step(beams).float().log_softmax(-1)
        vocab = total.shape[-1]
        top_scores, top_index = total.flatten().topk(min(2 * num_beams, total.numel()))
        keep_ids, keep_scores = [], []
        for rank, (score, index) in enumerate(zip(top_scores.tolist(), top_index.tolist())):
            seq = torch.cat([beams[index // vocab], torch.tensor([index % vocab])])
            if index % vocab == eos_id or i == max_new_tokens:
                if rank < num_beams:
                    pool.append((score / i ** length_penalty, seq))
            elif len(keep_ids) < num_beams:
                keep_ids.append(seq)
                keep_scores.append(score)
        pool.sort(key=lambda item: -item[0])
        if not keep_ids or i == max_new_tokens:
            break
        beams, beam_scores = torch.stack(keep_ids), torch.tensor(keep_scores)
        if len(pool) >= num_beams and beam_scores[0] / i ** length_penalty <= pool[num_beams - 1][0]:
            break
    best_score, best = pool[0]
    return best, best_score
"""


def test_seq2seq_mistakes_and_alternatives(tmp_path):
    # The three slips live in parts whose tests do not call each other's answers, so they share
    # one notebook (each notebook costs seconds of kernel start) and still lose exactly their cells.
    submissions = {
        "keys_from_x+no_shift+stop_when_pool_full": {"cross_attention": [KEYS_FROM_X_INIT, KEYS_FROM_X],
                                                     "train_step": [NO_SHIFT],
                                                     "beam_search": [STOP_WHEN_POOL_FULL]},
        "alternative": {"cross_attention": [INIT, CROSS_ALTERNATIVE],
                        "shift_right": [SHIFT_ALTERNATIVE],
                        "train_step": [STEP_ALTERNATIVE],
                        "beam_search": [BEAM_ALTERNATIVE]},
    }
    graded = grade_variants("seq2seq", submissions, tmp_path)

    points, total = graded.points, graded.total
    part = graded.part
    expected = {
        "alternative": total,
        # keys_from_x: the first visible shape check (k_proj must read kv_dim) fails, so all of
        # part 1 is lost. no_shift: shift_right is right; the training step's visible test names
        # the missing shift. stop_when_pool_full: the worked examples pass; the hidden comparison
        # with course_lib's rule does not.
        "keys_from_x+no_shift+stop_when_pool_full": (total - part("cross_attention") - part("train_step")
                                                     - points["test_beam_search_hidden"]),
    }
    assert total == 17 and 0 < expected["keys_from_x+no_shift+stop_when_pool_full"] < total
    graded.check(expected)
