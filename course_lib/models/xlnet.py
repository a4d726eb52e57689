"""XLNet: permutation language modelling with two-stream relative attention (Yang et al., 2019).

Shape legend
    b  batch        t  query positions    s  key positions (s = t: no memory here)
    h  heads        d  head_dim           e  embed_dim          v  vocab_size
    m  predicted targets (``target_mapping``)      r  relative distances (t + s of them)

XLNet predicts tokens in a random *factorisation order*: the token ranked k in the order may
only look at the tokens ranked before it. The order permutes the attention masks, never the
input, so every token keeps its position. Two streams run through the same weights:

    content stream h_i : sees every token up to and including itself in the order (like BERT's state)
    query stream   g_i : sees the tokens strictly before i in the order and i's *position*, never
                         i's own token, so it can be asked to predict that token

    scores_ij = (q_i + u) . k_j           content         (u = content_bias)
              + (q_i + w) . W_r R(i - j)  position        (w = position_bias, R sinusoidal)
              + (q_i + p) . S[seg_i != seg_j]  segment    (p = segment_bias, S = segment_embed)
    each block: x = norm(x + attention(x)); x = norm(x + ffn(x))   (post-norm, Transformer-XL)

The position scores are computed once per distance (t + s of them, not t * s), then moved
into place by :func:`relative_shift` (Dai et al., 2019). ``XLNet(ids)`` reads the content
stream (plain bidirectional LM logits ``(b t v)``); with ``target_mapping`` it reads the
query stream of the ``m`` targets (``(b m v)``). Only bidirectional attention without
memory is implemented. A query that may see no key gets a zero attention output (Hugging
Face spreads it uniformly over all keys); XLNet never asks a target to predict from nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from ..nn import FeedForward, LayerNorm, TokenEmbedding, scaled_dot_product_attention
from . import convert


@dataclass
class XLNetConfig:
    vocab_size: int = 32000
    embed_dim: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    hidden_dim: int = 4096
    activation: str = "gelu"
    dropout: float = 0.1
    norm_eps: float = 1e-12
    clamp_len: int = -1  # distances beyond +-clamp_len share one encoding; -1: no clamping
    init_std: float | None = 0.02  # N(0, init_std) for every matrix and bias vector; None keeps PyTorch's


def relative_sinusoids(t: int, s: int, embed_dim: int, clamp_len: int = -1, device=None) -> Tensor:
    """Sinusoidal encodings ``(r e)``, r = t + s, of the distances ``s, s-1, ..., -t+1``:
    ``[sin(dist * f), cos(dist * f)]`` with ``f = 1 / 10000^(2k/e)`` (Vaswani et al., 2017)."""
    dist = torch.arange(s, -t, -1, device=device, dtype=torch.float32)  # r
    if clamp_len > 0:
        dist = dist.clamp(-clamp_len, clamp_len)
    freq = 1.0 / 10000 ** (torch.arange(0, embed_dim, 2, device=device, dtype=torch.float32) / embed_dim)
    angles = dist[:, None] * freq  # r e/2
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # r e


def relative_shift(x: Tensor, s: int) -> Tensor:
    """``x (b h t r)``, scores against the distances of :func:`relative_sinusoids`, ->
    ``(b h t s)`` with ``out[..., i, j] = x[..., i, j + t - i]``, the column of distance ``i - j``.

    No gather: viewing the ``t * r`` scores as ``r`` rows of ``t`` and dropping the first row
    shifts row ``i`` left by ``t - i`` (the Transformer-XL trick).
    """
    b, h, t, r = x.shape
    x = x.reshape(b, h, r, t)[:, :, 1:]  # b h (r-1) t: drop t values, so rows realign shifted
    return x.reshape(b, h, t, r - 1)[..., :s]  # b h t s


class RelativeAttention(nn.Module):
    """Multi-head attention with XLNet's content, position and segment terms.

    ``forward(query (b t e) or (b m e), content (b s e), pos (r e), attn_mask, segment_differs,
    target_mapping)``: keys and values always come from the content stream; with
    ``target_mapping (b m t)`` the ``m`` queries are placed at their target positions first.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim must be divisible by num_heads, got {embed_dim} and {num_heads}")
        self.num_heads, self.head_dim, self.dropout = num_heads, embed_dim // num_heads, dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.pos_proj = nn.Linear(embed_dim, embed_dim, bias=False)  # W_r: distance encodings -> keys
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.content_bias = nn.Parameter(torch.zeros(num_heads, self.head_dim))  # u
        self.position_bias = nn.Parameter(torch.zeros(num_heads, self.head_dim))  # w
        self.segment_bias = nn.Parameter(torch.zeros(num_heads, self.head_dim))  # p
        self.segment_embed = nn.Parameter(torch.zeros(2, num_heads, self.head_dim))  # S[same], S[different]

    def forward(self, query: Tensor, content: Tensor, pos: Tensor, attn_mask: Tensor | None = None,
                segment_differs: Tensor | None = None, target_mapping: Tensor | None = None) -> Tensor:
        heads = dict(h=self.num_heads)
        q = rearrange(self.q_proj(query), "b t (h d) -> b h t d", **heads)
        if target_mapping is not None:  # put each target's query at its position
            q = torch.einsum("bhmd,bmt->bhtd", q, target_mapping.to(q.dtype))
        k = rearrange(self.k_proj(content), "b s (h d) -> b h s d", **heads)
        v = rearrange(self.v_proj(content), "b s (h d) -> b h s d", **heads)
        r = rearrange(self.pos_proj(pos), "r (h d) -> h r d", **heads)
        # Position term, once per distance, then shifted so column j holds distance i - j.
        bias = relative_shift(torch.einsum("bhtd,hrd->bhtr", q + self.position_bias[:, None], r), k.shape[2])
        if segment_differs is not None:  # (b t s) True where i and j lie in different segments
            seg = torch.einsum("bhtd,khd->bhtk", q + self.segment_bias[:, None], self.segment_embed)  # k = 2
            bias = bias + torch.where(segment_differs[:, None], seg[..., 1:], seg[..., :1])  # b h t s
        scale = self.head_dim ** -0.5
        out = scaled_dot_product_attention(
            q + self.content_bias[:, None], k, v, attn_mask=attn_mask, attn_bias=bias * scale, scale=scale,
            dropout_p=self.dropout if self.training else 0.0,
        )  # b h t d
        out = rearrange(out, "b h t d -> b t (h d)")
        if target_mapping is not None:  # read each target's output back from its position
            out = torch.einsum("bte,bmt->bme", out, target_mapping.to(out.dtype))
        return self.out_proj(out)


class XLNetBlock(nn.Module):
    """Post-norm block shared by both streams: ``norm(x + attention(x)); norm(x + ffn(x))``."""

    def __init__(self, c: XLNetConfig):
        super().__init__()
        self.self_attn = RelativeAttention(c.embed_dim, c.num_heads, c.dropout)
        self.self_attn_norm = LayerNorm(c.embed_dim, eps=c.norm_eps)
        self.ffn = FeedForward(c.embed_dim, c.hidden_dim, c.activation, c.dropout)
        self.ffn_norm = LayerNorm(c.embed_dim, eps=c.norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def _finish(self, x: Tensor, attn_out: Tensor) -> Tensor:
        x = self.self_attn_norm(x + self.dropout(attn_out))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))

    def forward(self, h: Tensor, g: Tensor | None, pos: Tensor, content_mask: Tensor | None,
                query_mask: Tensor | None, segment_differs: Tensor | None, target_mapping: Tensor | None):
        """Content stream ``h (b t e)``, query stream ``g (b m e)`` or ``None`` -> both, updated."""
        new_h = self._finish(h, self.self_attn(h, h, pos, content_mask, segment_differs))
        if g is not None:  # keys and values from the content stream *before* this block
            g = self._finish(g, self.self_attn(g, h, pos, query_mask, segment_differs, target_mapping))
        return new_h, g


class XLNet(nn.Module):
    """``ids (b t) -> logits (b t v)``, or ``(b m v)`` for the ``m`` targets of ``target_mapping``.

    The output layer is tied to the token embeddings, plus a bias.
    """

    def __init__(self, config: XLNetConfig):
        super().__init__()
        self.config = c = config
        self.token_embed = TokenEmbedding(c.vocab_size, c.embed_dim)
        self.mask_embed = nn.Parameter(torch.zeros(c.embed_dim))  # the query stream's start: no token
        self.blocks = nn.ModuleList(XLNetBlock(c) for _ in range(c.num_layers))
        self.lm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.dropout = nn.Dropout(c.dropout)
        if c.init_std is not None:
            self.init_weights(c.init_std)

    def init_weights(self, std: float = 0.02) -> None:
        """XLNet's initialisation: matrices, the attention biases and ``mask_embed`` N(0, std);
        linear and output biases 0; norms 1."""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.endswith("norm.weight"):
                    param.fill_(1.0)
                elif param.dim() >= 2 or name == "mask_embed":
                    param.normal_(0.0, std)
                else:
                    param.zero_()

    @staticmethod
    def stream_masks(ids: Tensor, attn_mask: Tensor | None = None, perm_mask: Tensor | None = None):
        """``(content_mask, query_mask)`` that both streams attend with, boolean ``(b 1 t s)``
        (``None`` when everything is visible), True = may attend; arguments as in ``forward``."""
        b, t = ids.shape
        may = None
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool or attn_mask.shape != (b, t):
                raise ValueError(f"attn_mask must be boolean (b, s) = {(b, t)}, True = a real token, "
                                 f"got {attn_mask.dtype} {tuple(attn_mask.shape)}")
            may = attn_mask[:, None, None, :]  # b 1 1 s
        if perm_mask is not None:
            if perm_mask.dtype != torch.bool or perm_mask.shape != (b, t, t):
                raise ValueError(f"perm_mask must be boolean (b, t, s) = {(b, t, t)}, True = i may see j "
                                 f"(objectives.permutation_masks), got {perm_mask.dtype} {tuple(perm_mask.shape)}")
            may = perm_mask[:, None] if may is None else may & perm_mask[:, None]  # b 1 t s
        if may is None:
            return None, None
        # The content stream always sees its own token; the query stream never needs to.
        return may | torch.eye(t, dtype=torch.bool, device=ids.device), may

    def forward(self, ids: Tensor, segment_ids: Tensor | None = None, attn_mask: Tensor | None = None,
                perm_mask: Tensor | None = None, target_mapping: Tensor | None = None) -> Tensor:
        """Args:
            ids: ``(b t)`` token ids.
            segment_ids: ``(b t)``; only whether two tokens share a segment matters. ``None``: no segment term.
            attn_mask: boolean ``(b s)``, True = a real token, False = padding (never attended to).
            perm_mask: boolean ``(b t s)``, True = position i may see position j in the factorisation
                order (the query mask of ``objectives.permutation_masks``); ``None``: every token sees every other.
            target_mapping: ``(b m t)``, row k one-hot on the position of the k-th target; turns on
                the query stream and returns its logits.

        Returns: ``(b t v)`` content-stream logits, or ``(b m v)`` for the targets.
        """
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (b, t), got {tuple(ids.shape)}")
        b, t = ids.shape
        content_mask, query_mask = self.stream_masks(ids, attn_mask, perm_mask)
        segment_differs = None
        if segment_ids is not None:
            if segment_ids.shape != ids.shape:
                raise ValueError(f"segment_ids {tuple(segment_ids.shape)} must match ids {tuple(ids.shape)}")
            segment_differs = segment_ids[:, :, None] != segment_ids[:, None, :]  # b t s
        h = self.dropout(self.token_embed(ids))  # b t e
        g = None
        if target_mapping is not None:
            if target_mapping.dim() != 3 or target_mapping.shape[0] != b or target_mapping.shape[2] != t:
                raise ValueError(f"target_mapping must have shape (b, m, t) = ({b}, m, {t}), "
                                 f"got {tuple(target_mapping.shape)}")
            g = self.dropout(self.mask_embed.expand(b, target_mapping.shape[1], -1))  # b m e
        pos = relative_sinusoids(t, t, self.config.embed_dim, self.config.clamp_len, ids.device)
        pos = self.dropout(pos.to(h.dtype))  # r e
        for block in self.blocks:
            h, g = block(h, g, pos, content_mask, query_mask, segment_differs, target_mapping)
        out = self.dropout(h if g is None else g)
        return self.token_embed.attend(out) + self.lm_bias

    @classmethod
    def from_hf(cls, hf_model) -> XLNet:
        """From a Hugging Face ``XLNetLMHeadModel`` (bidirectional, no memory)."""
        kwargs, state = convert.state_from_hf(hf_model, "XLNet")
        model = cls(XLNetConfig(**kwargs))
        model.load_state_dict(state, strict=True)
        return model.eval()
