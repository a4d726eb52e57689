"""The blocks assignment graded end to end: typical mistakes lose exactly the points of the
parts they break (a wrong LayerNorm also breaks the block built from it), forbidden calls are
caught, and other correct implementations get full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

LN_INIT = """
    self.eps = eps
    self.weight = nn.Parameter(torch.ones(dim))
    self.bias = nn.Parameter(torch.zeros(dim))
"""
FFN_INIT = """
    self.up_proj = nn.Linear(embed_dim, hidden_dim)
    self.down_proj = nn.Linear(hidden_dim, embed_dim)
"""
BLOCK_INIT = """
    self.self_attn = MultiHeadAttention(embed_dim=embed_dim, num_heads=num_heads)
    self.attn_norm = LayerNorm(embed_dim, eps=eps)
    self.ffn = FeedForward(embed_dim, hidden_dim)
    self.ffn_norm = LayerNorm(embed_dim, eps=eps)
"""

# --- Typical mistakes -------------------------------------------------------------------

# Tensor.var divides by n - 1 by default; LayerNorm divides by n.
UNBIASED_VARIANCE = """
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
"""

# The original Transformer's post-norm order instead of pre-norm.
POST_NORM = """
    x = self.attn_norm(x + self.self_attn(x, attn_mask=mask))
    return self.ffn_norm(x + self.ffn(x))
"""

# The shortcut, through an alias taken inside the method.
ALIASED_LAYER_NORM = """
    from torch.nn.functional import layer_norm as normalise
    return normalise(x, x.shape[-1:], self.weight, self.bias, self.eps)
"""

# --- Correct alternatives ---------------------------------------------------------------

VAR_MEAN = """
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, unbiased=False)
    return torch.addcmul(self.bias, (x - mean) * torch.rsqrt(var + self.eps), self.weight)
"""
ERF_GELU = """
    hidden = self.up_proj(x)
    hidden = 0.5 * hidden * (1.0 + torch.erf(hidden / math.sqrt(2.0)))
    return self.down_proj(hidden)
"""
NAMED_STEPS = """
    normed = self.attn_norm(x)
    residual = x + self.self_attn(normed, attn_mask=mask)
    normed = self.ffn_norm(residual)
    return residual + self.ffn(normed)
"""


def test_blocks_mistakes_and_alternatives(tmp_path):
    submissions = {
        "unbiased_variance": {"layer_norm": [LN_INIT, UNBIASED_VARIANCE]},
        "post_norm": {"transformer_block": [BLOCK_INIT, POST_NORM]},
        "aliased_layer_norm": {"layer_norm": [LN_INIT, ALIASED_LAYER_NORM]},
        "alternative": {"layer_norm": [LN_INIT, VAR_MEAN],
                        "feed_forward": [FFN_INIT, ERF_GELU],
                        "transformer_block": [BLOCK_INIT, NAMED_STEPS]},
    }
    graded = grade_variants("blocks", submissions, tmp_path)

    points, total, without = graded.points, graded.total, graded.without

    expected = {
        "alternative": total,
        # Part 1 fails; the block's visible test compares it with its own pieces and passes,
        # but the hidden comparison with torch's layer (true LayerNorm) fails.
        "unbiased_variance": without("test_layer_norm_visible", "test_layer_norm_hidden",
                                     "test_transformer_block_hidden"),
        "post_norm": without("test_transformer_block_visible", "test_transformer_block_hidden"),
        # Right numbers, but the grader sees torch's layer_norm called at run time, also through
        # the learner's block: both parts are flagged and score 0, whatever their tests say.
        "aliased_layer_norm": total - graded.part("layer_norm") - graded.part("transformer_block"),
    }
    assert 0 < expected["unbiased_variance"] < expected["post_norm"] < total
    graded.check(expected, flagged={"aliased_layer_norm": ["layer_norm", "transformer_block"]})
