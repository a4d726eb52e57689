"""The decoder assignment graded end to end: typical mistakes lose exactly the points of the
parts they break, a fake cache is caught, and other correct implementations get full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

# --- Typical mistakes -------------------------------------------------------------------

# The lower-triangular mask of a square attention, used when t < s: it is aligned to the top
# left, so a single new query after a cache sees only the first key. Without a cache (t = s)
# it is right, so the forward pass still earns its points; part 1 and the cache lose theirs.
TOP_LEFT_MASK = """
    t, s = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    visible = torch.ones(t, s, dtype=torch.bool).tril()
    scores = scores.masked_fill(~visible, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
"""

# A "cache" that remembers the token ids and recomputes everything: every logit is right, so
# the visible tests pass, but it saves no work, which the hidden test measures.
IDS_CACHE = [
    """
    old = 0 if cache is None else cache.shape[1]
    ids = ids if cache is None else torch.cat([cache, ids], dim=1)
    return gpt_forward(model, ids)[:, old:], ids
    """,
    """
    ids = prompt
    cache = None
    new = prompt
    for _ in range(max_new_tokens):
        logits, cache = gpt_forward_cached(model, new, cache)
        new = logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, new], dim=1)
    return ids
    """,
]

# --- Correct alternatives ---------------------------------------------------------------

# Positions compared explicitly, a finite "minus infinity", einsum.
CAUSAL_ALT = """
    t, s = q.shape[-2], k.shape[-2]
    query_pos = torch.arange(s - t, s)[:, None]
    key_pos = torch.arange(s)[None, :]
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) * q.shape[-1] ** -0.5
    scores = torch.where(key_pos <= query_pos, scores, torch.finfo(scores.dtype).min)
    weights = F.softmax(scores, dim=-1)
    return torch.einsum("bhts,bhsd->bhtd", weights, v)
"""

# view/transpose instead of einops, F.linear on the weights instead of calling the layers.
FORWARD_ALT = """
    B, T = ids.shape
    x = F.embedding(ids, model.token_embed.weight) + model.pos_embed.weight[None, :T]
    for blk in model.blocks:
        sa = blk.self_attn
        H = sa.num_heads
        y = blk.self_attn_norm(x)
        def heads(lin):
            out = F.linear(y, lin.weight, lin.bias)
            return out.view(B, T, H, -1).transpose(1, 2)
        o = causal_attention(heads(sa.q_proj), heads(sa.k_proj), heads(sa.v_proj))
        o = o.transpose(1, 2).reshape(B, T, -1)
        x = x + F.linear(o, sa.out_proj.weight, sa.out_proj.bias)
        x = x + blk.ffn(blk.ffn_norm(x))
    return F.linear(model.final_norm(x), model.token_embed.weight)
"""

# Sort-based top-k with a finite fill, Hugging Face's ascending cumulative sum for top-p.
FILTERS_ALT = [
    """
    threshold = logits.sort(dim=-1, descending=True).values[..., k - 1 : k]
    return torch.where(logits >= threshold, logits, torch.finfo(logits.dtype).min)
    """,
    """
    sorted_logits, idx = torch.sort(logits, dim=-1)  # ascending
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    remove_sorted = cumulative <= 1 - p
    remove_sorted[..., -1] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, idx, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))
    """,
]

# The Gumbel-max trick instead of torch.multinomial.
SAMPLER_ALT = """
    if temperature == 0:
        return torch.argmax(logits, dim=-1)
    z = logits / temperature
    if top_k:
        z = top_k_filter(z, top_k)
    if top_p:
        z = top_p_filter(z, top_p)
    u = torch.rand(z.shape, generator=generator, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    return torch.argmax(z.double() - torch.log(-torch.log(u)), dim=-1)
"""

# A preallocated cache in a class of its own, and a generation loop written differently.
CACHE_ALT = [
    """
    class _Cache:
        def __init__(self, n_layers):
            self.k = [None] * n_layers
            self.v = [None] * n_layers
            self.length = 0

    if cache is None:
        cache = _Cache(len(model.blocks))
    B, T = ids.shape
    pos = torch.arange(cache.length, cache.length + T)
    x = model.token_embed(ids) + model.pos_embed.weight[pos]
    for i, blk in enumerate(model.blocks):
        sa = blk.self_attn
        y = blk.self_attn_norm(x)
        q, k, v = (lin(y).view(B, T, sa.num_heads, -1).transpose(1, 2) for lin in (sa.q_proj, sa.k_proj, sa.v_proj))
        if cache.k[i] is not None:
            k = torch.cat((cache.k[i], k), dim=2)
            v = torch.cat((cache.v[i], v), dim=2)
        cache.k[i], cache.v[i] = k, v
        o = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, -1)
        x = x + sa.out_proj(o)
        x = x + blk.ffn(blk.ffn_norm(x))
    cache.length += T
    return model.token_embed.attend(model.final_norm(x)), cache
    """,
    """
    out = prompt.clone()
    cache = None
    todo = prompt
    for step in range(max_new_tokens):
        if use_cache:
            logits, cache = gpt_forward_cached(model, todo, cache)
        else:
            logits = gpt_forward(model, out)
        todo = torch.argmax(logits[:, -1, :], dim=-1).unsqueeze(1)
        out = torch.cat((out, todo), dim=1)
    return out
    """,
]


def test_decoder_mistakes_and_alternatives(tmp_path):
    submissions = {
        "top_left_mask": {"causal_attention": [TOP_LEFT_MASK]},
        "ids_cache": {"kv_cache": IDS_CACHE},
        "alternative": {
            "causal_attention": [CAUSAL_ALT], "gpt_forward": [FORWARD_ALT], "filters": FILTERS_ALT,
            "sample_next_token": [SAMPLER_ALT], "kv_cache": CACHE_ALT,
        },
    }
    graded = grade_variants("decoder", submissions, tmp_path)

    points, total, part = graded.points, graded.total, graded.part

    expected = {
        "alternative": total,
        # Part 1 and the cache fail; the forward pass (t = s) and sampling keep their points.
        "top_left_mask": part("gpt_forward") + part("filters") + part("sample_next_token"),
        # Only the hidden test that measures the work of a cached step fails.
        "ids_cache": total - points["test_kv_cache_hidden"],
    }
    assert 0 < expected["top_left_mask"] < expected["ids_cache"] < total
    graded.check(expected)
