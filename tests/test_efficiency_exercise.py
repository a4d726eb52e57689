"""The efficiency assignment graded end to end in one batch: typical mistakes lose exactly the
points of the cells they break (the memory cells for a (t, s) score matrix, the correctness
cells for a missing rescale or a wrong causal offset, the decoding part for an off-by-one),
the forbidden reference is flagged, and correct implementations in other styles get full marks."""
from __future__ import annotations

from functools import partial

import pytest

from tests import nbgrader_helpers as helpers
from tests.nbgrader_helpers import SOLUTIONS, grade_variants

pytestmark = pytest.mark.slow

SOURCE = SOLUTIONS / "efficiency" / "efficiency.ipynb"
solution_body = partial(helpers.solution_body, SOURCE)
edited = partial(helpers.edited, SOURCE)


# --- Typical mistakes -------------------------------------------------------------------

# Forgets to rescale the accumulator when the running max grows (row_sum is rescaled).
NO_RESCALE = ("acc = acc * correction + p @", "acc = acc + p @")

# Compares each query with the key's offset inside its block, not its place in the sequence.
WRONG_CAUSAL_OFFSET = ("causal = torch.arange(start, stop) <= query_pos",
                       "causal = torch.arange(stop - start) <= query_pos")

# Right numbers, but through the whole (t, s) score matrix: the memory cells fail.
MATERIALISED = """
t, s = q.shape[-2], k.shape[-2]
compute = torch.promote_types(q.dtype, torch.float32)
scores = q.to(compute) @ k.to(compute).transpose(-2, -1) / math.sqrt(q.shape[-1])  # (b, h, t, s)
if is_causal:
    scores = scores.masked_fill(torch.arange(s) > torch.arange(t)[:, None] + (s - t), float("-inf"))
if attn_mask is not None:
    scores = scores.masked_fill(~attn_mask, float("-inf"))
row_max = scores.amax(dim=-1, keepdim=True)
row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
p = torch.exp(scores - row_max)
total = p.sum(dim=-1, keepdim=True)
return (p @ v.to(compute) / torch.where(total > 0, total, torch.ones_like(total))).to(v.dtype)
"""

# Attends to the cached keys only, not to the new token's own key.
DECODE_OFF_BY_ONE = ("k_cache[..., : length + 1, :], v_cache[..., : length + 1, :]",
                     "k_cache[..., :length, :], v_cache[..., :length, :]")

# The tests' own reference, which this assignment forbids (the attention assignment does not
# declare it): flagged, so the whole part scores 0.
CALLS_REFERENCE = "return reference_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)"

# --- Correct alternatives ---------------------------------------------------------------

EINSUM = """
t, s = q.shape[-2], k.shape[-2]
compute = torch.promote_types(q.dtype, torch.float32)
q = q.to(compute) * q.shape[-1] ** -0.5
row_max = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=compute)
row_sum = torch.zeros_like(row_max)
acc = torch.zeros((*q.shape[:-1], v.shape[-1]), dtype=compute)
for start in range(0, s, block_size):
    kb, vb = k[..., start:start + block_size, :].to(compute), v[..., start:start + block_size, :].to(compute)
    scores = torch.einsum("bhtd,bhsd->bhts", q, kb)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask[..., start:start + block_size], float("-inf"))
    if is_causal:
        key_pos = torch.arange(start, start + kb.shape[-2])
        scores = scores.masked_fill(key_pos[None, :] > torch.arange(t)[:, None] + s - t, float("-inf"))
    new_max = torch.maximum(row_max, scores.amax(-1, keepdim=True))
    shift = new_max.nan_to_num(neginf=0.0)
    p = (scores - shift).exp()
    scale = (row_max - shift).exp()
    row_sum = scale * row_sum + p.sum(-1, keepdim=True)
    acc = scale * acc + torch.einsum("bhts,bhsd->bhtd", p, vb)
    row_max = new_max
return (acc / row_sum.clamp_min(torch.finfo(compute).tiny)).to(v.dtype)
"""

# Keeps the output normalised after every block: out = (out * old weight + p @ v) / new sum.
NORMALISED = edited("tiled_attention", """        row_sum = row_sum * correction + p.sum(dim=-1, keepdim=True)
        acc = acc * correction + p @ v[..., start:stop, :].to(compute)
        row_max = new_max
    out = acc / torch.where(row_sum > 0, row_sum, torch.ones_like(row_sum))
""", """        kept = row_sum * correction
        row_sum = kept + p.sum(dim=-1, keepdim=True)
        denom = torch.where(row_sum > 0, row_sum, torch.ones_like(row_sum))
        acc = (acc * kept + p @ v[..., start:stop, :].to(compute)) / denom
        row_max = new_max
    out = acc
""")

# Tiles the queries too (64 at a time) and uses key blocks half the size asked for.
QUERY_TILES = """
t, s = q.shape[-2], k.shape[-2]
kb_size = max(1, block_size // 2)
outs = []
for q_start in range(0, t, 64):
    qb = q[..., q_start:q_start + 64, :].double() / math.sqrt(q.shape[-1])
    query_pos = torch.arange(q_start, q_start + qb.shape[-2]) + (s - t)
    m = torch.full((*qb.shape[:-1], 1), float("-inf"), dtype=torch.float64)
    l = torch.zeros_like(m)
    o = torch.zeros((*qb.shape[:-1], v.shape[-1]), dtype=torch.float64)
    for k_start, (kb, vb) in enumerate(zip(torch.split(k, kb_size, dim=-2), torch.split(v, kb_size, dim=-2))):
        k_start *= kb_size
        sc = qb @ kb.double().transpose(-2, -1)
        keep = torch.ones(sc.shape[-2:], dtype=torch.bool)
        if is_causal:
            keep = torch.arange(k_start, k_start + kb.shape[-2])[None, :] <= query_pos[:, None]
        if attn_mask is not None:
            keep = keep & attn_mask[..., q_start:q_start + 64, k_start:k_start + kb.shape[-2]] \\
                if attn_mask.shape[-2] > 1 else keep & attn_mask[..., k_start:k_start + kb.shape[-2]]
        sc = sc.masked_fill(~keep, float("-inf"))
        m_new = torch.maximum(m, sc.amax(-1, keepdim=True))
        base = torch.where(m_new == float("-inf"), torch.zeros_like(m_new), m_new)
        p = torch.exp(sc - base)
        c = torch.exp(m - base)
        l, o, m = l * c + p.sum(-1, keepdim=True), o * c + p @ vb.double(), m_new
    outs.append(torch.where(l > 0, o / l, torch.zeros_like(o)))
return torch.cat(outs, dim=-2).to(v.dtype)
"""

DECODE_TILED = """
if length == k_cache.shape[-2]:
    raise ValueError("no room left in the KV cache")
k_cache[:, :, length] = k_new.squeeze(-2)
v_cache[:, :, length] = v_new.squeeze(-2)
return tiled_attention(q, k_cache[:, :, :length + 1], v_cache[:, :, :length + 1], block_size=4), length + 1
"""

DECODE = solution_body("decode_step")
TILED = solution_body("tiled_attention")


def test_efficiency_mistakes_and_alternatives(tmp_path):
    # The solution's decode_step does not call tiled_attention, so a slip in each part shares a
    # notebook (each notebook costs seconds of kernel start) and still loses exactly its cells;
    # the tiled-attention slips and styles share one cell and need a notebook each.
    variants = {
        "no_rescale+decode_off_by_one": {"tiled_attention": [TILED.replace(*NO_RESCALE)],
                                         "decode_step": [DECODE.replace(*DECODE_OFF_BY_ONE)]},
        "wrong_causal_offset": {"tiled_attention": [TILED.replace(*WRONG_CAUSAL_OFFSET)]},
        "materialised_scores": {"tiled_attention": [MATERIALISED]},
        "calls_reference": {"tiled_attention": [CALLS_REFERENCE]},
        # The decoder through the learner's tiled attention, here the einsum one.
        "einsum+decode_through_tiled": {"tiled_attention": [EINSUM], "decode_step": [DECODE_TILED]},
        "normalised_each_block": {"tiled_attention": [NORMALISED]},
        "query_tiles": {"tiled_attention": [QUERY_TILES]},
    }
    # Each edit must find its line in the solution, or the "mistake" would be the solution.
    for old, _ in (NO_RESCALE, WRONG_CAUSAL_OFFSET):
        assert TILED.count(old) == 1, old
    assert DECODE.count(DECODE_OFF_BY_ONE[0]) == 1
    graded = grade_variants("efficiency", variants, tmp_path)
    correctness = ("test_tiled_attention_visible", "test_tiled_attention_hidden")
    memory = ("test_tiled_attention_memory_visible", "test_tiled_attention_memory_hidden")
    full = graded.total
    graded.check({
        "no_rescale+decode_off_by_one": graded.without(*correctness) - graded.part("decode_step"),
        "wrong_causal_offset": graded.without(*correctness),
        "materialised_scores": graded.without(*memory),
        "calls_reference": full - graded.part("tiled_attention"),
        "einsum+decode_through_tiled": full, "normalised_each_block": full, "query_tiles": full,
    }, flagged={"calls_reference": ["tiled_attention"]})
