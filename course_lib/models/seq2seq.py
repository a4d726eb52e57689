"""The encoder-decoder family (BART): read a source sequence, write a target sequence.

Shape legend
    b  batch        s  source tokens       t  target tokens       e  embed_dim
    v  vocab_size   k  beams

    context = Encoder(src)                                  bidirectional self-attention
    logits = Decoder(tgt, context)                          causal self-attention, then
                                                            cross-attention to the context
                                                            (Vaswani et al., 2017; Lewis et al., 2020)

Training uses *teacher forcing*: the decoder reads the gold target shifted one step to
the right (``shift_right``) and predicts every next token in one parallel pass.
Generation feeds the model its own outputs, greedily (with a KV cache for the decoder's
self-attention) or by beam search.

The defaults follow BART: post-norm blocks, learned positions read from offset 2 (the
table has two extra rows, a fairseq leftover), a LayerNorm right after the embeddings,
one token table shared by encoder, decoder and output head, plus a ``final_logits_bias``.
Options of :class:`EncoderDecoderConfig` give the rest of the family:

* T5 and mT5 (Raffel et al., 2020; Xue et al., 2021): pre-norm with RMSNorm and no biases,
  no position vectors but a learned bias per head and distance bucket on the self-attention
  scores (``positions="relative"``), no ``1/sqrt(d)`` in attention, final norms, a ReLU or
  gated-GELU feed-forward, and the decoder output scaled by ``e**-0.5`` before a tied head;
* Pegasus (Zhang et al., 2020): pre-norm, fixed sinusoidal positions, embeddings scaled by
  ``sqrt(e)`` and final norms.

It reproduces Hugging Face's BART, T5, mT5 and Pegasus exactly (``from_hf``), and starts
from BART's initialisation (``init_weights``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import IGNORE_INDEX
from ..generate import beam_search, generate_tokens
from ..nn import (
    KVCache,
    LayerNorm,
    LearnedPositionalEmbedding,
    RelativePositionBias,
    RMSNorm,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    TransformerBlock,
    padding_mask_from_ids,
)
from . import convert


@dataclass
class EncoderDecoderConfig:
    vocab_size: int = 50265
    embed_dim: int = 768
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    num_heads: int = 12
    hidden_dim: int = 3072
    max_len: int = 1024
    position_offset: int = 2
    dropout: float = 0.1
    norm_eps: float = 1e-5
    activation: str = "gelu"
    scale_embedding: bool = False
    pad_id: int = 1
    bos_id: int | None = 0
    eos_id: int = 2
    decoder_start_id: int = 2
    init_std: float | None = 0.02  # BART's initialisation (init_weights); None keeps PyTorch's defaults
    init_scheme: str = "bart"  # or "t5": Mesh TensorFlow's scaled normals (init_weights)
    # The family's options; the defaults are BART's.
    norm_first: bool = False  # pre-norm blocks (T5, Pegasus) instead of post-norm
    positions: str = "learned"  # read from position_offset; "sinusoidal" (Pegasus) or "relative" (T5)
    ffn: str = "mlp"  # with `activation`; "gated": activation(gate_proj x) * up_proj x (T5 v1.1, mT5)
    norm: str = "layernorm"  # or "rmsnorm" (T5)
    embed_norm: bool = True  # a norm right after the embeddings (BART)
    final_norm: bool = False  # a norm after the last block of each stack (T5, Pegasus)
    attn_scale: float | None = None  # the factor on q k^T; None is 1/sqrt(d), T5 uses 1.0
    bias: bool = True  # biases in attention, feed-forward and LayerNorm (T5 has none)
    tie_head: bool = True  # the output head is the token table (untied in mT5 checkpoints)
    scale_head: bool = False  # decoder output times e**-0.5 before the head (T5 with its tied head)
    num_buckets: int = 32  # positions="relative": distance buckets per direction pair
    max_distance: int = 128  # positions="relative": distances from here on share one bucket


POSITIONS = ("learned", "sinusoidal", "relative")


class EncoderDecoder(nn.Module):
    """``(src (b s), tgt_in (b t)) -> logits (b t v)``."""

    def __init__(self, config: EncoderDecoderConfig):
        super().__init__()
        c = config
        if c.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {c.positions!r}")
        if c.norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {c.norm!r}")
        self.config = config
        # T5 and Pegasus start decoding with the padding token, so its row is a real input that must learn.
        padding_idx = None if c.decoder_start_id == c.pad_id else c.pad_id
        self.token_embed = TokenEmbedding(c.vocab_size, c.embed_dim, padding_idx=padding_idx, scale=c.scale_embedding)
        self.lm_head = None if c.tie_head else nn.Linear(c.embed_dim, c.vocab_size, bias=False)
        if c.positions == "learned":
            num_positions = c.max_len + c.position_offset
            self.encoder_pos_embed = LearnedPositionalEmbedding(num_positions, c.embed_dim)
            self.decoder_pos_embed = LearnedPositionalEmbedding(num_positions, c.embed_dim)
        elif c.positions == "sinusoidal":  # one fixed table (a buffer) for both stacks, sines then cosines
            self.pos_encoding = SinusoidalPositionalEncoding(c.embed_dim, max_len=c.max_len, interleave=False)
        else:  # a learned bias on the attention scores, computed once per stack and shared by its layers
            self.encoder_pos_bias = RelativePositionBias(c.num_heads, c.num_buckets, c.max_distance, bidirectional=True)
            self.decoder_pos_bias = RelativePositionBias(c.num_heads, c.num_buckets, c.max_distance,
                                                         bidirectional=False)

        def norm() -> nn.Module:
            if c.norm == "rmsnorm":
                return RMSNorm(c.embed_dim, eps=c.norm_eps)
            return LayerNorm(c.embed_dim, eps=c.norm_eps, bias=c.bias)

        self.encoder_embed_norm = norm() if c.embed_norm else None
        self.decoder_embed_norm = norm() if c.embed_norm else None
        self.dropout = nn.Dropout(c.dropout)

        def block(decoder: bool) -> TransformerBlock:
            return TransformerBlock(
                embed_dim=c.embed_dim, num_heads=c.num_heads, hidden_dim=c.hidden_dim, dropout=c.dropout,
                norm_first=c.norm_first, causal=decoder, cross_attention=decoder, activation=c.activation,
                ffn=c.ffn, norm=c.norm, norm_eps=c.norm_eps, bias=c.bias, scale=c.attn_scale,
            )

        self.encoder_blocks = nn.ModuleList(block(False) for _ in range(c.num_encoder_layers))
        self.decoder_blocks = nn.ModuleList(block(True) for _ in range(c.num_decoder_layers))
        # Pre-norm leaves the residual stream unnormalised: a last norm closes each stack.
        self.encoder_final_norm = norm() if c.final_norm else None
        self.decoder_final_norm = norm() if c.final_norm else None
        # Saved in checkpoints, never trained by HF (a persistent buffer).
        self.register_buffer("final_logits_bias", torch.zeros(1, c.vocab_size))
        if c.init_std is not None:
            self.init_weights(c.init_std)

    def init_weights(self, std: float = 0.02) -> None:
        """The family's own initialisation, in place (``config.init_scheme``).

        ``"bart"``, as BART's reference code does it (fairseq, and Hugging Face's port): weight
        matrices and embeddings N(0, std), biases 0, norms 1, the padding row 0. PyTorch's
        defaults (unit-variance embeddings, tied to the output) start with a loss far above
        ``ln(v)``; this starts near it. Pegasus uses the same.

        ``"t5"``, as T5's Mesh TensorFlow code does it (``std`` unused): each matrix N(0, 1/fan_in),
        except the query projection, whose extra ``1/sqrt(d)`` stands in for the attention scale
        T5 leaves out; embeddings N(0, 1), whose logits the tied head brings back to unit scale
        (``scale_head``); the relative-position bias N(0, 1/e); norms 1.
        """
        c = self.config
        if c.init_scheme not in ("bart", "t5"):
            raise ValueError(f"init_scheme must be 'bart' or 't5', got {c.init_scheme!r}")
        with torch.no_grad():
            for name, param in self.named_parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, self._t5_std(name, param) if c.init_scheme == "t5" else std)
                elif name.endswith("norm.weight"):
                    param.fill_(1.0)
                else:
                    param.zero_()
            if self.token_embed.padding_idx is not None:
                self.token_embed.weight[self.token_embed.padding_idx].zero_()

    def _t5_std(self, name: str, param: Tensor) -> float:
        e, head_dim = self.config.embed_dim, self.config.embed_dim // self.config.num_heads
        if name in ("token_embed.weight", "lm_head.weight"):
            return 1.0
        if name.endswith("pos_bias.weight"):
            return e ** -0.5
        if name.endswith("q_proj.weight"):
            return (e * head_dim) ** -0.5
        return param.shape[1] ** -0.5  # nn.Linear's weight is (out, in): 1 / sqrt(fan_in)

    def _embed(self, ids: Tensor, stack: str, offset: int = 0) -> Tensor:
        """``ids (b t)`` -> the input of the ``stack``'s first block ``(b t e)``; ``offset`` is
        the position of ``ids[:, 0]`` (the cached length while decoding)."""
        c = self.config
        x = self.token_embed(ids)
        if c.positions == "learned":
            x = getattr(self, f"{stack}_pos_embed")(x, offset=c.position_offset + offset)
        elif c.positions == "sinusoidal":
            x = self.pos_encoding(x, offset=offset)
        embed_norm = getattr(self, f"{stack}_embed_norm")
        return self.dropout(x if embed_norm is None else embed_norm(x))

    def _position_bias(self, stack: str, t: int, s: int) -> Tensor | None:
        """T5's relative position bias ``(1 h t s)`` for ``t`` queries after ``s - t`` earlier tokens."""
        return getattr(self, f"{stack}_pos_bias")(t, s) if self.config.positions == "relative" else None

    def _head(self, x: Tensor) -> Tensor:
        """Decoder output ``(b t e)`` -> logits ``(b t v)``."""
        if self.config.scale_head:  # T5's tied table has entries of order 1: keep the logits small
            x = x * self.config.embed_dim**-0.5
        logits = self.token_embed.attend(x) if self.lm_head is None else self.lm_head(x)
        return logits + self.final_logits_bias

    def encode(self, src: Tensor, attn_mask: Tensor | None = None, need_weights: bool = False):
        """``src (b s)`` -> context ``(b s e)``, the sequence the decoder's cross-attention reads.

        ``attn_mask`` defaults to the padding mask of ``src``. ``need_weights`` also returns
        each layer's self-attention weights ``(b h s s)``, as ``(context, [weights])``.
        """
        if attn_mask is None:
            attn_mask = padding_mask_from_ids(src, self.config.pad_id)
        x = self._embed(src, "encoder")
        attn_bias = self._position_bias("encoder", src.shape[1], src.shape[1])
        weights = []
        for blk in self.encoder_blocks:
            if need_weights:
                x, layer_weights = blk(x, attn_mask=attn_mask, attn_bias=attn_bias, need_weights=True)
                weights.append(layer_weights["self_attn"])
            else:
                x = blk(x, attn_mask=attn_mask, attn_bias=attn_bias)
        if self.encoder_final_norm is not None:
            x = self.encoder_final_norm(x)
        return (x, weights) if need_weights else x

    def decode(
        self, tgt: Tensor, context: Tensor, context_mask: Tensor | None = None,
        kv_caches: list[KVCache] | None = None, need_weights: bool = False,
    ):
        """``tgt (b t)`` and ``context (b s e)`` -> logits ``(b t v)``.

        ``context_mask`` (``(b, 1, 1, s)``) hides source padding from cross-attention; with
        ``kv_caches`` the ``tgt`` tokens continue the cached positions. ``need_weights`` also
        returns ``{"decoder": [(b h t t)], "cross": [(b h t s)]}``, one entry per layer.
        """
        offset = kv_caches[0].length if kv_caches is not None else 0
        x = self._embed(tgt, "decoder", offset)
        attn_bias = self._position_bias("decoder", tgt.shape[1], offset + tgt.shape[1])
        weights: dict[str, list[Tensor]] = {"decoder": [], "cross": []}
        for i, blk in enumerate(self.decoder_blocks):
            kv_cache = None if kv_caches is None else kv_caches[i]
            if need_weights:
                x, layer_weights = blk(x, attn_bias=attn_bias, context=context, context_mask=context_mask,
                                       kv_cache=kv_cache, need_weights=True)
                weights["decoder"].append(layer_weights["self_attn"])
                weights["cross"].append(layer_weights["cross_attn"])
            else:
                x = blk(x, attn_bias=attn_bias, context=context, context_mask=context_mask, kv_cache=kv_cache)
        if self.decoder_final_norm is not None:
            x = self.decoder_final_norm(x)
        logits = self._head(x)
        return (logits, weights) if need_weights else logits

    def forward(self, src: Tensor, tgt_in: Tensor, attn_mask: Tensor | None = None, need_weights: bool = False):
        """Teacher forcing: ``tgt_in`` is the target shifted right (see :meth:`shift_right`).

        ``attn_mask``: the source's padding mask ``(b, 1, 1, s)`` (by default from ``pad_id``),
        for the encoder's self-attention and, as the ``context_mask``, the cross-attention.
        ``need_weights`` also returns every attention layer's weights, as
        ``(logits, {"encoder": [(b h s s)], "decoder": [(b h t t)], "cross": [(b h t s)]})``.
        """
        if attn_mask is None:
            attn_mask = padding_mask_from_ids(src, self.config.pad_id)
        if not need_weights:
            return self.decode(tgt_in, self.encode(src, attn_mask), attn_mask)
        context, encoder_weights = self.encode(src, attn_mask, need_weights=True)
        logits, weights = self.decode(tgt_in, context, attn_mask, need_weights=True)
        return logits, {"encoder": encoder_weights, **weights}

    def shift_right(self, labels: Tensor) -> Tensor:
        """``labels (b t)`` -> decoder input ``[decoder_start, labels[:-1]]``; ``IGNORE_INDEX`` becomes padding."""
        shifted = torch.full_like(labels, self.config.decoder_start_id)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == IGNORE_INDEX, self.config.pad_id)

    def loss(self, src: Tensor, labels: Tensor) -> Tensor:
        """Teacher-forced cross-entropy of ``labels (b t)``; padding and ``IGNORE_INDEX`` are ignored."""
        logits = self(src, self.shift_right(labels))
        targets = labels.masked_fill(labels == self.config.pad_id, IGNORE_INDEX)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def generate(
        self,
        src: Tensor,
        max_new_tokens: int,
        *,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        early_stopping: bool | str = False,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_id: int | None = -1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Decode from ``src (b s)``; returns ``(b, 1 + n)`` starting with ``decoder_start_id``.

        ``num_beams=1`` decodes greedily (or samples when ``temperature > 0``) with a KV
        cache; ``num_beams > 1`` runs :func:`course_lib.generate.beam_search`, with one cache
        row per beam, permuted as the beams are re-ordered. ``eos_id``
        defaults to the config's; ``None`` generates exactly ``max_new_tokens``. Finished
        rows are padded with ``pad_id``.
        """
        c = self.config
        eos_id = c.eos_id if eos_id == -1 else eos_id
        context_mask = padding_mask_from_ids(src, c.pad_id)
        context = self.encode(src, context_mask)
        start = torch.full((src.shape[0], 1), c.decoder_start_id, dtype=torch.long, device=src.device)
        if num_beams == 1:
            caches = self._new_kv_caches(src.shape[0], 1 + max_new_tokens)

            def step(new_ids: Tensor) -> Tensor:
                return self.decode(new_ids, context, context_mask, kv_caches=caches)[:, -1]

            stops = () if eos_id is None else (eos_id,)
            return generate_tokens(step, start, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                   stop_tokens=stops, pad_id=c.pad_id, generator=generator)

        # Each beam reads the same context: repeat it k times along the batch.
        beam_context = context.repeat_interleave(num_beams, dim=0)  # (b k) s e
        beam_mask = context_mask.repeat_interleave(num_beams, dim=0)
        caches = self._new_kv_caches(src.shape[0] * num_beams, 1 + max_new_tokens)

        def beam_step(new_ids: Tensor) -> Tensor:
            return self.decode(new_ids, beam_context, beam_mask, kv_caches=caches)[:, -1]

        def reorder(parents: Tensor) -> None:  # each beam's cached prefix follows it
            for cache in caches:
                cache.reorder(parents)

        return beam_search(beam_step, start, num_beams=num_beams, max_new_tokens=max_new_tokens, eos_id=eos_id,
                           pad_id=c.pad_id, length_penalty=length_penalty, early_stopping=early_stopping,
                           reorder=reorder)

    def _new_kv_caches(self, batch_size: int, max_len: int) -> list[KVCache]:
        c, weight = self.config, self.token_embed.weight
        return [
            KVCache(batch_size, c.num_heads, max_len, c.embed_dim // c.num_heads, dtype=weight.dtype,
                    device=weight.device)
            for _ in self.decoder_blocks
        ]

    @classmethod
    def from_hf(cls, hf_model) -> EncoderDecoder:
        """From a Hugging Face ``BartForConditionalGeneration``, ``T5ForConditionalGeneration``,
        ``MT5ForConditionalGeneration`` or ``PegasusForConditionalGeneration``."""
        kwargs, state = convert.state_from_hf(hf_model, "EncoderDecoder")
        model = cls(EncoderDecoderConfig(**kwargs))
        model.load_state_dict(state, strict=True)
        return model.eval()
