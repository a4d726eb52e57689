"""GPT-1 (``OpenAIGPTLMHeadModel``) -> ``Decoder``: post-norm blocks and no final norm.

GPT-1 (Radford et al., 2018) normalises *after* each residual addition, like the original
Transformer, so its last block already ends in a LayerNorm and there is no ``ln_f``. Its
weights are stored like GPT-2's: ``Conv1D`` matrices ``(in, out)``, a transposed
``nn.Linear``, with q, k, v fused in one ``c_attn``.
"""
from __future__ import annotations

from torch import Tensor

from ._rules import require, strip_prefix

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
    for i in range(c.n_layer):
        p, q = f"h.{i}.", f"blocks.{i}."
        # Conv1D: y = x @ W + b with W (in, out), so nn.Linear's weight is W^T.
        w_qkv, b_qkv = sd.pop(p + "attn.c_attn.weight").t(), sd.pop(p + "attn.c_attn.bias")
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            out[q + f"self_attn.{proj}.weight"] = w_qkv[j * e:(j + 1) * e]
            out[q + f"self_attn.{proj}.bias"] = b_qkv[j * e:(j + 1) * e]
        for src, dst in (("attn.c_proj", "self_attn.out_proj"), ("mlp.c_fc", "ffn.up_proj"),
                         ("mlp.c_proj", "ffn.down_proj")):
            out[q + dst + ".weight"] = sd.pop(p + src + ".weight").t()
            out[q + dst + ".bias"] = sd.pop(p + src + ".bias")
        # Post-norm: ln_1 follows the attention's residual addition, ln_2 the MLP's.
        for src, dst in (("ln_1", "self_attn_norm"), ("ln_2", "ffn_norm")):
            for param in ("weight", "bias"):
                out[q + f"{dst}.{param}"] = sd.pop(p + f"{src}.{param}")
    leftover = [k for k in sd if not k.endswith(".attn.bias")]  # the causal-mask buffer of old checkpoints
    require(not leftover, f"GPT-1: unconverted checkpoint keys {leftover}")
    return config, {k: v.detach().clone().contiguous() for k, v in out.items()}
