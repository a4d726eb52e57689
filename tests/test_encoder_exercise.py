"""The encoder assignment graded end to end: typical mistakes lose exactly the points of the
part they break (one only the hidden tests can see), and other correct implementations get
full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

BLOCK_INIT = """
    self.self_attn = MultiHeadAttention(embed_dim=embed_dim, num_heads=num_heads, dropout=dropout)
    self.attn_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
    self.up_proj = nn.Linear(embed_dim, hidden_dim)
    self.down_proj = nn.Linear(hidden_dim, embed_dim)
    self.ffn_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
    self.dropout = nn.Dropout(dropout)
"""

# --- Typical mistakes -------------------------------------------------------------------

# GPT-2's pre-norm order instead of BERT's post-norm.
PRE_NORM = """
    x = x + self.dropout(self.self_attn(self.attn_norm(x), attn_mask=attn_mask))
    return x + self.dropout(self.down_proj(self.dropout(F.gelu(self.up_proj(self.ffn_norm(x))))))
"""

# Two independent draws for [MASK] and random: the random draw overwrites some [MASK]s, so
# only about 72% of the chosen tokens end up as [MASK] and 18% unchanged.
OVERLAPPING_DRAWS = """
special = torch.isin(ids, torch.tensor(list(special_ids), dtype=ids.dtype))
chosen = (torch.rand(ids.shape) < mask_prob) & ~special
labels = torch.where(chosen, ids, torch.full_like(ids, -100))
inputs = torch.where(chosen & (torch.rand(ids.shape) < 0.8), torch.full_like(ids, mask_id), ids)
random_ids = torch.randint(vocab_size, ids.shape, dtype=ids.dtype)
inputs = torch.where(chosen & (torch.rand(ids.shape) < 0.1), random_ids, inputs)
return inputs, labels
"""

HEAD_INIT = """
self.encoder = encoder
self.dropout = nn.Dropout(dropout)
self.classifier = nn.Linear(embed_dim, num_labels)
"""

# A frozen encoder: the logits are right, but fine-tuning would train only the classifier.
# Only the hidden test (gradients reach the encoder) sees it.
FROZEN_ENCODER = """
with torch.no_grad():
    hidden = self.encoder(ids)
return self.classifier(self.dropout(hidden))
"""

LOSS = "return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)"

# --- Correct alternatives ---------------------------------------------------------------

# An activation module and separate dropout modules. (Importing course_lib's LayerNorm here would
# be flagged: `course grade` treats an import of course_lib.nn in an answer cell as calling the
# library instead of writing the code.)
ALT_BLOCK_INIT = """
self.self_attn = MultiHeadAttention(embed_dim=embed_dim, num_heads=num_heads, dropout=dropout)
self.attn_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
self.up_proj = nn.Linear(embed_dim, hidden_dim)
self.act = nn.GELU()
self.down_proj = nn.Linear(hidden_dim, embed_dim)
self.ffn_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
self.drop_attn, self.drop_hidden, self.drop_out = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
"""
ALT_BLOCK_FORWARD = """
attended = self.self_attn(x, attn_mask=attn_mask)
x = self.attn_norm(x + self.drop_attn(attended))
hidden = self.drop_hidden(self.act(self.up_proj(x)))
return self.ffn_norm(x + self.drop_out(self.down_proj(hidden)))
"""

# Hugging Face's recipe: Bernoulli draws, the 10/10 split made conditional on "not [MASK]".
ALT_MASK = """
candidates = torch.ones_like(ids, dtype=torch.bool)
for special_id in special_ids:
    candidates &= ids != special_id
chosen = torch.bernoulli(torch.full(ids.shape, float(mask_prob))).bool() & candidates
labels = ids.clone()
labels[~chosen] = -100
inputs = ids.clone()
to_mask = torch.bernoulli(torch.full(ids.shape, 0.8)).bool() & chosen
inputs[to_mask] = mask_id
to_random = torch.bernoulli(torch.full(ids.shape, 0.5)).bool() & chosen & ~to_mask
inputs[to_random] = torch.randint(vocab_size, (int(to_random.sum()),), dtype=ids.dtype)
return inputs, labels
"""

# einsum for the head; the loss from log-probabilities, averaged by hand.
ALT_HEAD_FORWARD = """
states = self.dropout(self.encoder(ids))
return torch.einsum("bte,ce->btc", states, self.classifier.weight) + self.classifier.bias
"""
ALT_LOSS = """
keep = labels != -100
log_probs = torch.log_softmax(logits[keep], dim=-1)
return -log_probs.gather(1, labels[keep].unsqueeze(1)).sum() / keep.sum()
"""


def test_encoder_mistakes_and_alternatives(tmp_path):
    # Slips in parts whose tests do not call each other's answers share a notebook (each notebook
    # costs seconds of kernel start): the parts are graded apart, so each still loses exactly its cells.
    submissions = {
        "pre_norm+overlapping_draws+frozen_encoder": {
            "encoder_block": [BLOCK_INIT, PRE_NORM],
            "bert_mask": [OVERLAPPING_DRAWS],
            "token_classifier": [HEAD_INIT, FROZEN_ENCODER, LOSS]},
        "alternative": {"encoder_block": [ALT_BLOCK_INIT, ALT_BLOCK_FORWARD],
                        "bert_mask": [ALT_MASK],
                        "token_classifier": [HEAD_INIT, ALT_HEAD_FORWARD, ALT_LOSS]},
    }
    graded = grade_variants("encoder", submissions, tmp_path)

    points, total = graded.points, graded.total
    part = graded.part

    expected = {
        "alternative": total,
        # pre_norm and overlapping_draws lose their whole parts; for the frozen encoder the
        # visible tests pass and only the hidden gradient test catches it.
        "pre_norm+overlapping_draws+frozen_encoder": (total - part("encoder_block") - part("bert_mask")
                                                      - points["test_token_classifier_hidden"]),
    }
    assert total == part("encoder_block") + part("bert_mask") + part("token_classifier") == 15
    graded.check(expected)
