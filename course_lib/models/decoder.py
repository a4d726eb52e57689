"""The GPT family: a decoder-only Transformer language model, and how to sample from it.

Shape legend
    b  batch        t  tokens in this call        e  embed_dim        v  vocab_size
    s  cached + new positions (KV cache)          c  control-code tokens

    x = token[ids] (+ position[offset..offset+t-1] when positions are learned or sinusoidal)
    x = pre-norm (or post-norm) causal TransformerBlock(x) * num_layers
    logits = final_norm(x) @ W_out          (W_out = token table when embeddings are tied)

One config covers GPT-2 (LayerNorm, GELU MLP, learned positions, tied embeddings;
Radford et al., 2019) and Llama-style models (RMSNorm, SwiGLU, rotary positions, GQA,
untied head; Touvron et al., 2023). Options reach back to GPT-1 (post-norm, no final norm;
Radford et al., 2018), CTRL (sinusoidal positions, embeddings scaled by sqrt(e), an output
bias; Keskar et al., 2019) and OPT (positions offset by 2, a narrower token table projected
in and out; Zhang et al., 2022); ``from_hf`` loads each of them from Hugging Face.

``generate`` decodes greedily or by sampling (temperature, top-k, top-p), stops rows at
stop tokens and, by default, keeps a KV cache so each new token costs one position of
work. A batch of prompts of different lengths is padded on the left and masked
(``attn_mask``), and each row then continues as it would alone. Decoding a single query
against the cache builds no mask and asks the host nothing per step; ``cuda_graph=True``
goes further and replays each step as one CUDA graph over a fixed-shape cache (the
gpt-fast recipe), since at small batches a GPU spends most of a step waiting for Python
to launch its kernels. CTRL-style conditioning (Keskar et al., 2019) is a prefix of
control-code tokens: ``with_control_codes`` prepends them, and ``lm_loss(..., num_prefix=c)`` does not ask
the model to predict them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import IGNORE_INDEX
from ..generate import generate_tokens, replayable
from ..nn import (
    KVCache,
    LayerNorm,
    LearnedPositionalEmbedding,
    RMSNorm,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
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
    positions: str = "learned"  # or "rope", or "sinusoidal" (fixed; sines then cosines, CTRL's layout)
    position_offset: int = 0  # position p reads row p + offset of the position table (OPT: 2)
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    bias: bool = True
    norm_first: bool = True  # pre-norm blocks; False = post-norm (GPT-1, OPT-350m)
    final_norm: bool = True  # a norm after the last block (post-norm stacks end normed already)
    scale_embeddings: bool = False  # token vectors times sqrt(embed_dim) (CTRL)
    token_dim: int | None = None  # a narrower token table, projected in and out of embed_dim (OPT-350m)
    head_bias: bool = False  # a learned bias added to the logits (CTRL)
    init_std: float | None = 0.02  # GPT-2's initialisation (init_weights); None keeps PyTorch's defaults


class Decoder(nn.Module):
    """A causal language model: ``ids (b t) -> logits (b t v)``."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        c = config
        if c.positions not in ("learned", "rope", "sinusoidal"):
            raise ValueError(f"positions must be 'learned', 'rope' or 'sinusoidal', got {c.positions!r}")
        self.config = config
        token_dim = c.token_dim or c.embed_dim
        self.token_embed = TokenEmbedding(c.vocab_size, token_dim, scale=c.scale_embeddings)
        # OPT-350m keeps a 512-wide token table in a 1024-wide model: project in after the
        # lookup, and out again before the (tied) head.
        self.proj_in = nn.Linear(token_dim, c.embed_dim, bias=False) if token_dim != c.embed_dim else None
        self.proj_out = nn.Linear(c.embed_dim, token_dim, bias=False) if token_dim != c.embed_dim else None
        if c.positions == "learned":
            self.pos_embed = LearnedPositionalEmbedding(c.max_len + c.position_offset, c.embed_dim)
        elif c.positions == "sinusoidal":
            self.pos_embed = SinusoidalPositionalEncoding(c.embed_dim, c.max_len + c.position_offset, interleave=False)
        else:
            self.pos_embed = None  # rotary: positions enter inside attention
        # One rotary table shared by every layer (it holds no parameters, only cos/sin buffers).
        self.rotary = (
            RotaryEmbedding(c.embed_dim // c.num_heads, max_len=c.max_len, base=c.rope_base)
            if c.positions == "rope" else None
        )
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                embed_dim=c.embed_dim, num_heads=c.num_heads, hidden_dim=c.hidden_dim, num_kv_heads=c.num_kv_heads,
                dropout=c.dropout, norm_first=c.norm_first, causal=True, activation=c.activation, ffn=c.ffn,
                norm=c.norm, norm_eps=c.norm_eps, bias=c.bias, rotary=self.rotary,
            )
            for _ in range(c.num_layers)
        )
        self.final_norm = (
            None if not c.final_norm
            else RMSNorm(c.embed_dim, eps=c.norm_eps) if c.norm == "rmsnorm"
            else LayerNorm(c.embed_dim, eps=c.norm_eps, bias=c.bias)
        )
        self.lm_head = None if c.tie_embeddings else nn.Linear(token_dim, c.vocab_size, bias=c.head_bias)
        self.head_bias = nn.Parameter(torch.zeros(c.vocab_size)) if c.tie_embeddings and c.head_bias else None
        if c.init_std is not None:
            self.init_weights(c.init_std)

    def init_weights(self, std: float = 0.02) -> None:
        """GPT-2's initialisation, in place: weights N(0, std), biases 0, norms 1.

        The projections that write into the residual stream (``out_proj``, ``down_proj``) get
        ``std / sqrt(2 * num_layers)``, so the stream's variance does not grow with depth
        (Radford et al., 2019, sec. 2.3). With the tied head this also keeps the first logits
        small: the untrained model predicts nearly uniformly, a loss of ln(v), not tens of nats.
        """
        residual_std = std / math.sqrt(2 * len(self.blocks))
        for name, param in self.named_parameters():
            if name.endswith(("out_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, 0.0, residual_std)
            elif param.dim() >= 2:
                nn.init.normal_(param, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
            else:  # the gains of LayerNorm and RMSNorm
                nn.init.ones_(param)

    def hidden_states(
        self, ids: Tensor, attn_mask: Tensor | None = None, kv_caches: list[KVCache] | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """``ids (b t)`` -> the last block's states ``(b t e)``, final-normed when the model has a final norm.

        Args:
            attn_mask: extra boolean mask (e.g. padding), broadcastable to ``(b, h, t, s)``;
                the causal mask is always applied.
            kv_caches: one :class:`KVCache` per block; ``ids`` then continue the cached positions.
            positions: ``(b t)`` integer position of each token in ``[0, max_len)`` (e.g. to
                skip left padding); by default ``ids`` start at the cache's length.
        """
        if kv_caches is not None and len(kv_caches) != len(self.blocks):
            raise ValueError(f"kv_caches needs one cache per block ({len(self.blocks)}), got {len(kv_caches)}")
        max_len, start = self.config.max_len, kv_caches[0].length if kv_caches is not None else 0
        if positions is not None and self.pos_embed is None:
            raise ValueError("positions select rows of a position table; this model uses rotary "
                             "positions, which depend only on distances: leave positions=None")
        if positions is not None:
            integer = not (positions.dtype.is_floating_point or positions.dtype == torch.bool)
            if (tuple(positions.shape) != tuple(ids.shape) or not integer
                    or positions.numel() and not 0 <= int(positions.min()) <= int(positions.max()) < max_len):
                raise ValueError(f"positions must lie in [0, {max_len}) and be integers with the shape of ids "
                                 f"{tuple(ids.shape)}, got {tuple(positions.shape)} {positions.dtype}")
        if positions is None and self.pos_embed is not None and start + ids.shape[1] > max_len:
            raise ValueError(f"{ids.shape[1]} tokens after {start} cached ones exceed the model's max_len={max_len}")
        return self._states(ids, attn_mask, kv_caches, positions)

    def _states(self, ids, attn_mask, kv_caches, positions) -> Tensor:
        # Decoding steps come here directly: no check that reads a device value on the host.
        x = self.token_embed(ids)
        if self.proj_in is not None:
            x = self.proj_in(x)
        if self.pos_embed is not None:
            offset = self.config.position_offset
            if positions is None:
                x = self.pos_embed(x, offset=offset + (kv_caches[0].length if kv_caches is not None else 0))
            else:
                table = self.pos_embed.weight if self.config.positions == "learned" else self.pos_embed.table(x)
                x = x + table[positions + offset].to(x.dtype)  # b t e
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask=attn_mask, kv_cache=None if kv_caches is None else kv_caches[i])
        return x if self.final_norm is None else self.final_norm(x)

    def _head(self, h: Tensor) -> Tensor:
        if self.proj_out is not None:
            h = self.proj_out(h)
        if self.lm_head is not None:
            return self.lm_head(h)
        logits = self.token_embed.attend(h)
        return logits if self.head_bias is None else logits + self.head_bias

    def forward(
        self, ids: Tensor, attn_mask: Tensor | None = None, kv_caches: list[KVCache] | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """``ids (b t)`` -> next-token logits ``(b t v)`` at every position."""
        return self._head(self.hidden_states(ids, attn_mask, kv_caches, positions))

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
        attn_mask: Tensor | None = None,
        use_cache: bool = True,
        cuda_graph: bool = False,
        control_codes: Tensor | list[int] | None = None,
        generator: torch.Generator | None = None,
        logits_filter=None,
    ) -> Tensor:
        """Continue ``ids (b t)``; returns ``(b, c + t + n)`` (control codes, prompt, new tokens).

        ``temperature=0`` is greedy. See :func:`course_lib.generate.generate_tokens` for
        stop tokens and ``pad_id``.

        Args:
            attn_mask: ``(b t)`` boolean, False on the left padding of prompts shorter than
                ``t``; every row then continues exactly as it would alone.
            use_cache: ``False`` re-runs the whole prefix at each step; it exists to show (and
                test) that the cache changes speed, not results.
            cuda_graph: record one decoding step as a CUDA graph and replay it per token
                (a cache of fixed shape, see :meth:`KVCache.use_position`); on a GPU this
                removes the launch overhead that dominates small batches. Not with rotary
                positions. Off CUDA the same fixed-shape step runs without a graph.
        """
        if control_codes is not None:
            n_codes = ids.shape[1]
            ids = with_control_codes(ids, control_codes)
            if attn_mask is not None:
                attn_mask = torch.cat([attn_mask.new_ones(ids.shape[0], ids.shape[1] - n_codes), attn_mask], dim=1)
        total = ids.shape[1] + max_new_tokens
        keys, positions = self._padding(ids, attn_mask, total)
        if cuda_graph and (not use_cache or self.pos_embed is None):
            raise ValueError("cuda_graph needs use_cache=True and learned positions (or sinusoidal ones), "
                             "not rotary")
        if not use_cache:
            step = self._full_step(keys, positions)
        elif cuda_graph:
            step = self._graph_step(ids.shape[0], total, keys, positions)
        else:
            step = self._cached_step(ids.shape[0], total, keys, positions)
        return generate_tokens(
            step, ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            stop_tokens=stop_tokens, pad_id=pad_id, generator=generator, logits_filter=logits_filter,
        )

    def _padding(self, ids: Tensor, attn_mask: Tensor | None, total: int):
        """Keys that may be attended ``(b, total)`` and absolute positions ``(b, total)``;
        ``(None, None)`` without padding, so that decoding builds no mask at all."""
        if total > self.config.max_len:
            raise ValueError(f"prompt ({ids.shape[1]}) + max_new_tokens need {total} positions, "
                             f"but the model's max_len is {self.config.max_len}")
        if attn_mask is None:
            return None, None
        if attn_mask.shape != ids.shape or attn_mask.dtype != torch.bool:
            raise ValueError(f"attn_mask must be boolean with the shape of ids {tuple(ids.shape)}, "
                             f"got {tuple(attn_mask.shape)} {attn_mask.dtype}")
        if not bool(attn_mask[:, -1].all()):
            raise ValueError("pad prompts on the left: attn_mask[:, -1] must be True in every row, so that "
                             "the next token follows a real one")
        if bool(attn_mask.all()):
            return None, None
        keys = torch.ones(ids.shape[0], total, dtype=torch.bool, device=ids.device)
        keys[:, : ids.shape[1]] = attn_mask.to(ids.device)
        # A row's first real token takes position 0, as if it were alone. Rotary positions
        # need no shift: a rotation by a common angle leaves q . k unchanged.
        positions = (keys.long().cumsum(dim=1) - 1).clamp(min=0) if self.pos_embed is not None else None
        return keys, positions

    def _cached_step(self, batch_size: int, max_len: int, keys=None, positions=None):
        caches = self.new_kv_caches(batch_size, max_len)

        def step(new_ids: Tensor) -> Tensor:
            start = caches[0].length
            end = start + new_ids.shape[1]
            mask = None if keys is None else keys[:, None, None, :end]  # b 1 1 s
            pos = None if positions is None else positions[:, start:end]
            # Only the last position's logits are needed: skip the head for the rest of a prompt.
            return self._head(self._states(new_ids, mask, caches, pos)[:, -1:])[:, 0]

        return step

    def _full_step(self, keys=None, positions=None):
        seen: list[Tensor] = []

        def step(new_ids: Tensor) -> Tensor:
            seen.append(new_ids)
            ids = torch.cat(seen, dim=1)
            s = ids.shape[1]
            mask = None if keys is None else keys[:, None, None, :s]
            pos = None if positions is None else positions[:, :s]
            return self._head(self._states(ids, mask, None, pos)[:, -1:])[:, 0]

        return step

    def _graph_step(self, batch_size: int, max_len: int, keys=None, positions=None):
        """The prompt runs as usual; every later step has fixed shapes and runs as one CUDA graph."""
        device = self.token_embed.weight.device
        caches = self.new_kv_caches(batch_size, max_len)
        keys = torch.ones(batch_size, max_len, dtype=torch.bool, device=device) if keys is None else keys
        if positions is None:
            positions = torch.arange(max_len, device=device).expand(batch_size, -1)
        slots = torch.arange(max_len, device=device)
        where = torch.zeros(1, dtype=torch.long, device=device)  # the cache slot this step writes
        new_ids = torch.zeros(batch_size, 1, dtype=torch.long, device=device)
        state: dict = {}

        def body() -> Tensor:
            mask = (keys & (slots <= where))[:, None, None, :]  # b 1 1 max_len: filled slots, no padding
            pos = positions.gather(1, where.expand(batch_size, 1))  # b 1
            return self._head(self._states(new_ids, mask, caches, pos)[:, -1:])[:, 0]

        def step(ids: Tensor) -> Tensor:
            if not state:  # the prompt: fill the caches the usual way, then switch them to `where`
                t = ids.shape[1]
                mask = None if bool(keys[:, :t].all()) else keys[:, None, None, :t]
                logits = self._head(self._states(ids, mask, caches, positions[:, :t])[:, -1:])[:, 0]
                where.fill_(t)
                for cache in caches:
                    cache.use_position(where)
                state["run"] = replayable(body, device)
                return logits
            new_ids.copy_(ids)
            logits = state["run"]()
            where.add_(1)
            return logits

        return step
    @classmethod
    def from_hf(cls, hf_model) -> Decoder:
        """From a Hugging Face model; :data:`convert.FAMILIES` lists the classes (GPT-2, Llama, GPT-1, CTRL, OPT)."""
        kwargs, state = convert.state_from_hf(hf_model, "Decoder")
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
    targets[:, : max(num_prefix - 1, 0)] = IGNORE_INDEX  # the first code is never a target anyway
    if pad_id is not None:
        targets[targets == pad_id] = IGNORE_INDEX
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)
