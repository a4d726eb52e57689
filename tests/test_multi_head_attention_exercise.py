"""The multi-head-attention assignment graded end to end: typical mistakes lose exactly the
points of the part they break, shortcuts are caught, and other correct implementations get
full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow


INIT = """
    self.num_heads = num_heads
    self.head_dim = embed_dim // num_heads
    self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
    self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
    self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
    self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
"""

FORWARD = """
    source = x if context is None else context
    q = split_heads(self.q_proj(x), self.num_heads)
    k = split_heads(self.k_proj(source), self.num_heads)
    v = split_heads(self.v_proj(source), self.num_heads)
    scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return self.out_proj(merge_heads(weights @ v)), weights
"""

# --- Typical mistakes -------------------------------------------------------------------

# Scales by the model width instead of the head width.
SCALE_BY_EMBED_DIM = FORWARD.replace("math.sqrt(self.head_dim)", "math.sqrt(self.head_dim * self.num_heads)")

# Splits the last axis as (d h): head i gets every h-th feature.
SPLIT_D_H = ['return rearrange(x, "b t (d h) -> b h t d", h=num_heads)',
             'return rearrange(x, "b h t d -> b t (d h)")']

# Takes the shortcut: the fused kernel for the output (weights still computed by hand, so
# every visible test passes).
FUSED_SHORTCUT = FORWARD.replace(
    "return self.out_proj(merge_heads(weights @ v)), weights",
    "out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)\n"
    "    return self.out_proj(merge_heads(out)), weights",
)

# --- Correct alternatives ---------------------------------------------------------------

VIEW_TRANSPOSE = [
    """
    b, t, e = x.shape
    return x.view(b, t, num_heads, e // num_heads).transpose(1, 2)
    """,
    """
    b, h, t, d = x.shape
    return x.transpose(1, 2).contiguous().view(b, t, h * d)
    """,
]

# One head at a time with einsum, a finite "minus infinity", and no split_heads at all.
LOOP_OVER_HEADS = """
    kv_in = context if context is not None else x
    B, T, E = x.shape
    S = kv_in.shape[1]
    Q, K, V = self.q_proj(x), self.k_proj(kv_in), self.v_proj(kv_in)
    outs, ws = [], []
    for i in range(self.num_heads):
        sl = slice(i * self.head_dim, (i + 1) * self.head_dim)
        sc = torch.einsum("btd,bsd->bts", Q[..., sl], K[..., sl]) * self.head_dim ** -0.5
        if mask is not None:
            m = torch.broadcast_to(mask, (B, self.num_heads, T, S))[:, i]
            sc = torch.where(m, sc, torch.finfo(sc.dtype).min)
        wi = torch.nn.functional.softmax(sc, dim=-1)
        ws.append(wi)
        outs.append(torch.einsum("bts,bsd->btd", wi, V[..., sl]))
    return self.out_proj(torch.cat(outs, dim=-1)), torch.stack(ws, dim=1)
"""


def test_multi_head_attention_mistakes_and_alternatives(tmp_path):
    submissions = {
        "scale_by_embed_dim": {"multi_head_attention": [INIT, SCALE_BY_EMBED_DIM]},
        "split_d_h": {"split_merge": SPLIT_D_H},
        "fused_shortcut": {"multi_head_attention": [INIT, FUSED_SHORTCUT]},
        "alternative": {"split_merge": VIEW_TRANSPOSE,
                        "multi_head_attention": [INIT, LOOP_OVER_HEADS]},
    }
    graded = grade_variants("multi_head_attention", submissions, tmp_path)

    points, total = graded.points, graded.total
    split = graded.part("split_merge")
    visible_mha = points["test_multi_head_attention_visible"]
    expected = {
        "alternative": total,
        # Part 1 is right, the module is wrong: only part 1's points.
        "scale_by_embed_dim": split,
        # The module uses the learner's split_heads, so a wrong split costs everything.
        "split_d_h": 0.0,
        # The visible tests pass (right numbers), but the grader sees the fused kernel called at
        # run time: the part is flagged and scores 0.
        "fused_shortcut": split,
    }
    assert 0 < split < split + visible_mha < total
    graded.check(expected, flagged={"fused_shortcut": ["multi_head_attention"]})
