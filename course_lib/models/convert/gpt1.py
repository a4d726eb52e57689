"""GPT-1 (``OpenAIGPTLMHeadModel``) -> ``Decoder``: post-norm blocks and no final norm.

GPT-1 (Radford et al., 2018) normalises *after* each residual addition, like the original
Transformer, so its last block already ends in a LayerNorm and there is no ``ln_f``. Its
weights are stored like GPT-2's: ``Conv1D`` matrices ``(in, out)``, a transposed
``nn.Linear``, with q, k, v fused in one ``c_attn``.
"""
from __future__ import annotations

from torch import Tensor

from ._rules import require, strip_prefix
from .gpt2 import pop_block

# OpenAI GPT's own activation table: its "gelu" is the tanh approximation.
_ACTIVATIONS = {"gelu": "gelu_tanh", "relu": "relu"}


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    c = hf_model.config
    require(c.afn in _ACTIVATIONS, f"GPT-1: unsupported activation afn={c.afn!r}; supported: {sorted(_ACTIVATIONS)}")
    e = c.n_embd
    config = dict(
        vocab_size=c.vocab_size, embed_dim=e, num_layers=c.n_layer, num_heads=c.n_head, hidden_dim=4 * e,
        max_len=c.n_positions, norm="layernorm", norm_eps=c.layer_norm_epsilon, ffn="mlp",
        activation=_ACTIVATIONS[c.afn], positions="learned", tie_embeddings=c.tie_word_embeddings, bias=True,
        dropout=c.resid_pdrop, norm_first=False, final_norm=False,
    )
    sd = strip_prefix(hf_model.state_dict(), "transformer.")
    out = {"token_embed.weight": sd.pop("tokens_embed.weight"), "pos_embed.weight": sd.pop("positions_embed.weight")}
    lm_head = sd.pop("lm_head.weight")
    if not c.tie_word_embeddings:
        out["lm_head.weight"] = lm_head
    for i in range(c.n_layer):  # post-norm: ln_1 follows the attention's residual addition, ln_2 the MLP's
        out.update(pop_block(sd, i, e))
    leftover = [k for k in sd if not k.endswith(".attn.bias")]  # the causal-mask buffer of old checkpoints
    require(not leftover, f"GPT-1: unconverted checkpoint keys {leftover}")
    return config, {k: v.detach().clone().contiguous() for k, v in out.items()}
