"""The multimodal assignment graded end to end: typical mistakes lose exactly the points of the
parts they break (a wrong patchify also breaks the patch embedding built on it), using the
library's patch embedding is caught, and other correct implementations get full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

# --- Typical mistakes -------------------------------------------------------------------

# Reshaping the image straight into rows of c*p*p pixels: "patches" that are strips of a row.
RESHAPE_PATCHIFY = """
b, c, height, width = images.shape
return images.reshape(b, (height // patch_size) * (width // patch_size), c * patch_size * patch_size)
"""

# Only "each image picks its caption": the text-to-image half of the symmetric loss is missing.
ONE_DIRECTION = """
image = F.normalize(image_embeds, dim=-1)
text = F.normalize(text_embeds, dim=-1)
logits = logit_scale.exp() * image @ text.T
return F.cross_entropy(logits, torch.arange(len(logits)))
"""

# Prompts grouped as (m, k) although the rows are grouped by class, (k, m).
WRONG_GROUPING = """
cosines = F.normalize(image_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).T
scores = cosines.view(image_embeds.shape[0], prompts_per_class, -1).mean(dim=1)
return scores.argmax(dim=-1)
"""

# The shortcut: right numbers, through the library's own module.
LIBRARY_INIT = """
from course_lib.nn import PatchEmbedding as LibraryPatchEmbedding
self.inner = LibraryPatchEmbedding(image_size, patch_size, in_channels, embed_dim)
self.proj = self.inner.proj
self.num_patches = self.inner.num_patches
"""
LIBRARY_FORWARD = """
return self.inner(images)
"""

# --- Correct alternatives ---------------------------------------------------------------

UNFOLD_PATCHIFY = """
return F.unfold(images, kernel_size=patch_size, stride=patch_size).transpose(1, 2)
"""
CONV_INIT = """
self.num_patches = (image_size // patch_size) ** 2
self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
"""
CONV_FORWARD = """
return self.proj(images).flatten(2).transpose(1, 2)
"""
LOG_SOFTMAX_LOSS = """
cosines = F.normalize(image_embeds, dim=1) @ F.normalize(text_embeds, dim=1).T
logits = cosines * torch.exp(logit_scale)
diagonal = torch.diagonal(logits)
image_to_text = (torch.logsumexp(logits, dim=1) - diagonal).mean()
text_to_image = -torch.log_softmax(logits, dim=0).diagonal().mean()
return 0.5 * (image_to_text + text_to_image)
"""
PROMPT_ENSEMBLE = """
k = text_embeds.shape[0] // prompts_per_class
text = F.normalize(text_embeds, dim=-1).reshape(k, prompts_per_class, -1).mean(dim=1)
text = text / text.norm(dim=-1, keepdim=True)  # CLIP normalises the ensemble again
return torch.argmax(image_embeds @ text.T, dim=1)
"""


def test_multimodal_mistakes_and_alternatives(tmp_path):
    # Slips in parts whose tests do not call each other's answers share a notebook (each notebook
    # costs seconds of kernel start): the parts are graded apart, so each still loses exactly its cells.
    submissions = {
        "reshape_patchify+wrong_grouping": {"patchify": [RESHAPE_PATCHIFY], "zero_shot": [WRONG_GROUPING]},
        "one_direction+library_patch_embedding": {"clip_loss": [ONE_DIRECTION],
                                                  "patch_embedding": [LIBRARY_INIT, LIBRARY_FORWARD]},
        "alternative": {"patchify": [UNFOLD_PATCHIFY],
                        "patch_embedding": [CONV_INIT, CONV_FORWARD],
                        "clip_loss": [LOG_SOFTMAX_LOSS],
                        "zero_shot": [PROMPT_ENSEMBLE]},
    }
    graded = grade_variants("multimodal", submissions, tmp_path)

    points, total = graded.points, graded.total
    assert total == 12

    without = graded.without

    expected = {
        "alternative": total,
        # The solution's PatchEmbedding calls patchify, so Part 2 fails with Part 1; the wrong
        # grouping fails both zero-shot cells.
        "reshape_patchify+wrong_grouping": without("test_patchify_visible", "test_patchify_hidden",
                                                   "test_patch_embedding_visible", "test_patch_embedding_hidden",
                                                   "test_zero_shot_visible", "test_zero_shot_hidden"),
        # One direction fails both loss cells. The library's patch embedding gives the right
        # numbers, so its visible test passes; the grader sees the library's module called at
        # run time and the part is flagged (0 points).
        "one_direction+library_patch_embedding": without("test_clip_loss_visible", "test_clip_loss_hidden",
                                                         "test_patch_embedding_visible",
                                                         "test_patch_embedding_hidden"),
    }
    assert 0 < expected["reshape_patchify+wrong_grouping"] < expected["one_direction+library_patch_embedding"] < total
    graded.check(expected, flagged={"one_direction+library_patch_embedding": ["patch_embedding"]})
