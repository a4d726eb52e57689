"""The GPT family: a decoder-only Transformer language model, and how to sample from it.

Shape legend
    b  batch        t  tokens in this call        e  embed_dim        v  vocab_size
    s  cached + new positions (KV cache)          c  control-code tokens

    x = token[ids] (+ position[offset..offset+t-1] when positions are learned)
    x = pre-norm causal TransformerBlock(x) * num_layers
    logits = final_norm(x) @ W_out          (W_out = token table when embeddings are tied)

One config covers GPT-2 (LayerNorm, GELU MLP, learned positions, tied embeddings;
Radford et al., 2019) and Llama-style models (RMSNorm, SwiGLU, rotary positions, GQA,
untied head; Touvron et al., 2023); ``from_hf`` loads either from Hugging Face.

``generate`` decodes greedily or by sampling (temperature, top-k, top-p), stops rows at
stop tokens and, by default, keeps a KV cache so each new token costs one position of
work. CTRL-style conditioning (Keskar et al., 2019) is a prefix of control-code tokens:
``with_control_codes`` prepends them, and ``lm_loss(..., num_prefix=c)`` does not ask
the model to predict them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..generate import generate_tokens
from ..nn import (
    KVCache,
    LayerNorm,
    LearnedPositionalEmbedding,
    RMSNorm,
    RotaryEmbedding,
    TokenEmbedding,
    TransformerBlock,
)
from . import convert


@dataclass
class DecoderConfig:
    vocab_size: int = 50257
    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    num_kv_heads: int | None = None
    hidden_dim: int = 3072
    max_len: int = 1024
    dropout: float = 0.0
    norm: str = "layernorm"  # or "rmsnorm"
    norm_eps: float = 1e-5
    ffn: str = "mlp"  # or "swiglu"
    activation: str = "gelu_tanh"  # for ffn="mlp"
    positions: str = "learned"  # or "rope"
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    bias: bool = True


class Decoder(nn.Module):
    """A causal language model: ``ids (b t) -> logits (b t v)``."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        c = config
        if c.positions not in ("learned", "rope"):
            raise ValueError(f"positions must be 'learned' or 'rope', got {c.positions!r}")
        self.config = config
        self.token_embed = TokenEmbedding(c.vocab_size, c.embed_dim)
        self.pos_embed = LearnedPositionalEmbedding(c.max_len, c.embed_dim) if c.positions == "learned" else None
        # One rotary table shared by every layer (it holds no parameters, only cos/sin buffers).
        self.rotary = (
            RotaryEmbedding(c.embed_dim // c.num_heads, max_len=c.max_len, base=c.rope_base)
            if c.positions == "rope" else None
        )
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                embed_dim=c.embed_dim, num_heads=c.num_heads, hidden_dim=c.hidden_dim, num_kv_heads=c.num_kv_heads,
                dropout=c.dropout, norm_first=True, causal=True, activation=c.activation, ffn=c.ffn, norm=c.norm,
                norm_eps=c.norm_eps, bias=c.bias, rotary=self.rotary,
            )
            for _ in range(c.num_layers)
        )
        self.final_norm = (
            RMSNorm(c.embed_dim, eps=c.norm_eps) if c.norm == "rmsnorm"
            else LayerNorm(c.embed_dim, eps=c.norm_eps, bias=c.bias)
        )
        self.lm_head = None if c.tie_embeddings else nn.Linear(c.embed_dim, c.vocab_size, bias=False)

    def hidden_states(
        self, ids: Tensor, attn_mask: Tensor | None = None, kv_caches: list[KVCache] | None = None
    ) -> Tensor:
        """``ids (b t)`` -> final-normed states ``(b t e)``.

        Args:
            attn_mask: extra boolean mask (e.g. padding), broadcastable to ``(b, h, t, s)``;
                the causal mask is always applied.
            kv_caches: one :class:`KVCache` per block; ``ids`` then continue the cached positions.
        """
        if kv_caches is not None and len(kv_caches) != len(self.blocks):
            raise ValueError(f"kv_caches needs one cache per block ({len(self.blocks)}), got {len(kv_caches)}")
        offset = kv_caches[0].length if kv_caches is not None else 0
        x = self.token_embed(ids)
        if self.pos_embed is not None:
            x = self.pos_embed(x, offset=offset)
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask=attn_mask, kv_cache=None if kv_caches is None else kv_caches[i])
        return self.final_norm(x)

    def forward(self, ids: Tensor, attn_mask: Tensor | None = None, kv_caches: list[KVCache] | None = None) -> Tensor:
        """``ids (b t)`` -> next-token logits ``(b t v)`` at every position."""
        h = self.hidden_states(ids, attn_mask, kv_caches)
        return self.token_embed.attend(h) if self.lm_head is None else self.lm_head(h)

    def new_kv_caches(self, batch_size: int, max_len: int) -> list[KVCache]:
        """Empty caches, one per block, on the model's device and dtype."""
        c, weight = self.config, self.token_embed.weight
        if max_len > c.max_len:
            raise ValueError(f"max_len={max_len} exceeds the model's max_len={c.max_len}")
        return [
            KVCache(batch_size, c.num_kv_heads or c.num_heads, max_len, c.embed_dim // c.num_heads,
                    dtype=weight.dtype, device=weight.device)
            for _ in self.blocks
        ]

    @torch.no_grad()
    def generate(
        self,
        ids: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_tokens: tuple[int, ...] | list[int] = (),
        pad_id: int | None = None,
        use_cache: bool = True,
        control_codes: Tensor | list[int] | None = None,
        generator: torch.Generator | None = None,
        logits_filter=None,
    ) -> Tensor:
        """Continue ``ids (b t)``; returns ``(b, c + t + n)`` (control codes, prompt, new tokens).

        ``temperature=0`` is greedy. See :func:`course_lib.generate.generate_tokens` for
        stop tokens and ``pad_id``. ``use_cache=False`` re-runs the whole prefix at each
        step; it exists to show (and test) that the cache changes speed, not results.
        """
        if control_codes is not None:
            ids = with_control_codes(ids, control_codes)
        step = self._cached_step(ids.shape[0], ids.shape[1] + max_new_tokens) if use_cache else self._full_step()
        return generate_tokens(
            step, ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            stop_tokens=stop_tokens, pad_id=pad_id, generator=generator, logits_filter=logits_filter,
        )

    def _cached_step(self, batch_size: int, max_len: int):
        caches = self.new_kv_caches(batch_size, max_len)
        return lambda new_ids: self(new_ids, kv_caches=caches)[:, -1]

    def _full_step(self):
        seen: list[Tensor] = []

        def step(new_ids: Tensor) -> Tensor:
            seen.append(new_ids)
            return self(torch.cat(seen, dim=1))[:, -1]

        return step

    @classmethod
    def from_hf(cls, hf_model) -> Decoder:
        """From a Hugging Face ``GPT2LMHeadModel`` or ``LlamaForCausalLM``."""
        kwargs, state = convert.decoder_from_hf(hf_model)
        model = cls(DecoderConfig(**kwargs))
        model.load_state_dict(state, strict=True)
        return model.eval()


def with_control_codes(ids: Tensor, control_codes: Tensor | list[int]) -> Tensor:
    """Prepend CTRL control codes: ``ids (b t)``, codes ``(c,)`` or ``(b c)`` -> ``(b, c + t)``."""
    codes = torch.as_tensor(control_codes, dtype=ids.dtype, device=ids.device)
    if codes.dim() == 1:
        codes = codes.expand(ids.shape[0], -1)
    if codes.dim() != 2 or codes.shape[0] != ids.shape[0]:
        raise ValueError(
            f"control_codes must have shape (c,) or (b, c) with b={ids.shape[0]}, got {tuple(codes.shape)}"
        )
    return torch.cat([codes, ids], dim=1)


def lm_loss(logits: Tensor, ids: Tensor, num_prefix: int = 0, pad_id: int | None = None) -> Tensor:
    """Next-token cross-entropy: position ``i`` predicts ``ids[:, i + 1]``.

    Args:
        logits: ``(b t v)`` from ``Decoder(ids)``.
        num_prefix: the first ``num_prefix`` tokens (control codes) are context only, never targets.
        pad_id: targets equal to it are ignored.
    """
    if logits.shape[:2] != ids.shape:
        raise ValueError(f"logits (b, t, v) {tuple(logits.shape)} and ids (b, t) {tuple(ids.shape)} disagree")
    targets = ids[:, 1:].clone()
    targets[:, : max(num_prefix - 1, 0)] = -100  # the first code is never a target anyway
    if pad_id is not None:
        targets[targets == pad_id] = -100
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
