"""GPT-2 (``GPT2LMHeadModel``) -> ``Decoder``.

GPT-2 stores its projections as ``Conv1D`` with weights ``(in, out)`` (a transposed
``nn.Linear``) and q, k, v fused in one ``c_attn``.
"""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, require, strip_prefix


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    c = hf_model.config
    require(not c.scale_attn_by_inverse_layer_idx, "scale_attn_by_inverse_layer_idx is not supported")
    require(c.scale_attn_weights, "scale_attn_weights=False is not supported")
    require(c.activation_function in ACTIVATIONS, f"unsupported activation {c.activation_function!r}")
    e = c.n_embd
    config = dict(
        vocab_size=c.vocab_size, embed_dim=e, num_layers=c.n_layer, num_heads=c.n_head,
        hidden_dim=c.n_inner or 4 * e, max_len=c.n_positions, norm="layernorm", norm_eps=c.layer_norm_epsilon,
        ffn="mlp", activation=ACTIVATIONS[c.activation_function], positions="learned",
        tie_embeddings=c.tie_word_embeddings, bias=True, dropout=c.resid_pdrop,
    )
    sd = strip_prefix(hf_model.state_dict(), "transformer.")
    out = {"token_embed.weight": sd.pop("wte.weight"), "pos_embed.weight": sd.pop("wpe.weight"),
           "final_norm.weight": sd.pop("ln_f.weight"), "final_norm.bias": sd.pop("ln_f.bias")}
    lm_head = sd.pop("lm_head.weight")
    if not c.tie_word_embeddings:
        out["lm_head.weight"] = lm_head
    for i in range(c.n_layer):
        out.update(pop_block(sd, i, e))
    leftover = [k for k in sd if not k.endswith((".attn.bias", ".attn.masked_bias"))]  # old causal buffers
    require(not leftover, f"GPT-2: unconverted checkpoint keys {leftover}")
    return config, {k: v.detach().clone().contiguous() for k, v in out.items()}


def pop_block(sd: dict[str, Tensor], i: int, e: int) -> dict[str, Tensor]:
    """Block ``i`` of a GPT-1/GPT-2 state dict (keys ``h.<i>.``, removed from ``sd``) in our names.

    Conv1D computes ``y = x @ W + b`` with ``W (in, out)``, so nn.Linear's weight is ``W^T``; q, k
    and v are stacked in ``c_attn``. ``ln_1`` and ``ln_2`` sit before (GPT-2) or after (GPT-1) the
    sub-layers, which the model's ``norm_first`` decides, not the names.
    """
    p, q, out = f"h.{i}.", f"blocks.{i}.", {}
    w_qkv, b_qkv = sd.pop(p + "attn.c_attn.weight").t(), sd.pop(p + "attn.c_attn.bias")
    for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
        out[q + f"self_attn.{proj}.weight"] = w_qkv[j * e:(j + 1) * e]
        out[q + f"self_attn.{proj}.bias"] = b_qkv[j * e:(j + 1) * e]
    for src, dst in (("attn.c_proj", "self_attn.out_proj"), ("mlp.c_fc", "ffn.up_proj"),
                     ("mlp.c_proj", "ffn.down_proj")):
        out[q + dst + ".weight"] = sd.pop(p + src + ".weight").t()
        out[q + dst + ".bias"] = sd.pop(p + src + ".bias")
    for src, dst in (("ln_1", "self_attn_norm"), ("ln_2", "ffn_norm")):
        for param in ("weight", "bias"):
            out[q + f"{dst}.{param}"] = sd.pop(p + f"{src}.{param}")
    return out
