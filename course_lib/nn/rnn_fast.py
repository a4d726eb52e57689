"""The fused path of the recurrent layers: the same step loop, with its backward pass written out.

Shape legend (as in ``rnn.py``)
    t  time steps       b  batch       i  input_size       hdim  hidden_size
    k  gates per cell: 1 (RNN), 4 (LSTM), 3 (GRU)

``rnn.py`` unrolls a cell with ordinary tensor operations and lets autograd record every one
of them. That is the readable version, but each step then costs about a dozen small operations
forward and as many autograd nodes backward, and at small widths their overhead, not the
arithmetic, sets the time. Here one ``torch.autograd.Function`` runs a whole layer:

1. The input half of every step, ``W_ih x + b``, is one matmul over all t steps before the
   loop, written straight into the buffer that the loop then fills in place; its gradients
   are one matmul each after the backward loop.
2. Each step does one ``addmm`` for all k gates at once, into that preallocated buffer, and
   the activations and state updates work in place on it and on state tensors allocated
   before the loop: nothing is stacked from a Python list, nothing is indexed in a way that
   autograd must undo.
3. The backward pass is written by hand (backpropagation through time, Werbos 1990). Every
   local derivative that does not depend on the carried gradients is computed for all steps
   at once before the loop, so a backward step is one ``addmm`` and two to four products.

Gate order and weight layout are torch's, so the same parameters serve both paths.
"""
from __future__ import annotations

import torch
from torch import Tensor

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def unroll_fused(cell: str, x: Tensor, state: tuple[Tensor, ...], weight_ih: Tensor, weight_hh: Tensor,
                 bias_ih: Tensor, bias_hh: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer over all steps: ``x (t b i)``, state ``(b hdim)`` each ->
    ``(outputs (t b hdim), final state)``; ``cell`` is one of ``CELLS``."""
    x = x.contiguous()  # t b i, flattened to (t b) i for the input matmul
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    if cell == "lstm":
        outputs, h, c = _LSTMLayer.apply(x, state[0], state[1], *weights)
        return outputs, (h, c)
    if cell == "gru":
        outputs, h = _GRULayer.apply(x, state[0], *weights)
    elif cell in ("rnn_tanh", "rnn_relu"):
        outputs, h = _RNNLayer.apply(x, state[0], *weights, cell == "rnn_relu")
    else:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    return outputs, (h,)


def _no_second_derivative() -> None:
    # The engine runs a backward pass in grad mode only for create_graph=True. The steps
    # below are not recorded, so a second derivative would silently miss their terms.
    if torch.is_grad_enabled():
        raise RuntimeError("the fused recurrent layers have no second derivative (backward with "
                           "create_graph=True); build the module with impl='naive' for that")


def _sigmoid_grad(grad: Tensor, y: Tensor, out: Tensor) -> Tensor:
    """``grad * y * (1 - y)`` for ``y = sigmoid(x)``, in one pass without temporaries."""
    return torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=out)


def _tanh_grad(grad: Tensor, y: Tensor, out: Tensor) -> Tensor:
    """``grad * (1 - y * y)`` for ``y = tanh(x)``, in one pass without temporaries."""
    return torch.ops.aten.tanh_backward.grad_input(grad, y, grad_input=out)


def _incoming_state_grads(grad_outputs: Tensor, grad_final_h: Tensor) -> Tensor:
    """``dh (t+1 b hdim)``: row s+1 starts as the gradient reaching step s's output from above
    (and, for the last step, from the final state); row 0 will hold the initial state's."""
    dh = torch.cat([torch.zeros_like(grad_final_h).unsqueeze(0), grad_outputs])
    dh[-1] += grad_final_h
    return dh


def _weight_grad(d_pre: Tensor, inputs: Tensor) -> Tensor:
    """``sum over steps and batch of d_pre^T inputs``: the gradient of a weight ``(k*hdim, n)``
    from those of the pre-activations ``(t b k*hdim)`` and the inputs it multiplied ``(t b n)``."""
    # Written as (inputs^T d_pre)^T: this MKL product runs about 10% faster than d_pre^T inputs.
    return (inputs.flatten(0, 1).t() @ d_pre.flatten(0, 1)).t()


def _input_grads(ctx, d_pre: Tensor, x: Tensor, weight_ih: Tensor):
    """Gradients of ``x`` and ``W_ih`` from those of the pre-activations ``W_ih x + b``, ``(t b k*hdim)``."""
    grad_x = (d_pre.flatten(0, 1) @ weight_ih).view(*x.shape) if ctx.needs_input_grad[0] else None
    return grad_x, _weight_grad(d_pre, x)


class _RNNLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu: bool):
        t, b, _ = x.shape
        hdim = h0.shape[-1]
        hs = x.new_empty(t + 1, b, hdim)  # hs[s] is the state step s reads, hs[s+1] its output
        hs[0] = h0
        torch.addmm(bias_ih + bias_hh, x.flatten(0, 1), weight_ih.t(), out=hs[1:].view(t * b, hdim))
        h, w_t = hs.unbind(0), weight_hh.t()
        for s in range(t):
            h[s + 1].addmm_(h[s], w_t)
            if relu:
                h[s + 1].relu_()
            else:
                h[s + 1].tanh_()
        ctx.relu = relu
        ctx.save_for_backward(x, hs, weight_ih, weight_hh)
        return hs[1:], hs[t].clone()

    @staticmethod
    def backward(ctx, grad_outputs, grad_final_h):
        _no_second_derivative()
        x, hs, weight_ih, weight_hh = ctx.saved_tensors
        out = hs[1:]
        d_pre = (out > 0).to(out.dtype) if ctx.relu else 1 - out * out  # the activation's slope, all steps
        dh_all = _incoming_state_grads(grad_outputs, grad_final_h)
        dh, d_step = dh_all.unbind(0), d_pre.unbind(0)
        for s in reversed(range(len(d_step))):
            d_step[s].mul_(dh[s + 1])
            dh[s].addmm_(d_step[s], weight_hh)
        grad_x, grad_weight_ih = _input_grads(ctx, d_pre, x, weight_ih)
        grad_weight_hh = _weight_grad(d_pre, hs[:-1])
        grad_bias = d_pre.sum((0, 1))
        return grad_x, dh[0], grad_weight_ih, grad_weight_hh, grad_bias, grad_bias.clone(), None


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
        t, b, _ = x.shape
        hdim = h0.shape[-1]
        # tanh(x) = 2 sigmoid(2x) - 1, and on the CPU torch's tanh costs several sigmoids: with
        # the cell-input rows doubled, one sigmoid per step activates all four gates at once.
        w_ih, w_hh, bias = weight_ih.clone(), weight_hh.clone(), bias_ih + bias_hh
        for w in (w_ih, w_hh, bias):
            w[2 * hdim:3 * hdim] *= 2
        # The input half of every step in one matmul; the loop then works on this buffer in place.
        gates = torch.addmm(bias, x.flatten(0, 1), w_ih.t()).view(t, b, 4, hdim)
        hs, cs = x.new_empty(t + 1, b, hdim), x.new_empty(t + 1, b, hdim)
        tanh_cs = x.new_empty(t, b, hdim)
        hs[0], cs[0] = h0, c0
        # Per-step views, made once (a list lookup is much cheaper than indexing a tensor).
        flat = gates.view(t, b, 4 * hdim).unbind(0)
        i, f, g, o = (gates[:, :, k].unbind(0) for k in range(4))
        h, c, tanh_c, w_t = hs.unbind(0), cs.unbind(0), tanh_cs.unbind(0), w_hh.t()
        for s in range(t):
            flat[s].addmm_(h[s], w_t).sigmoid_()  # all four gates: one matmul, one activation
            # c' = f c + i tanh(x), with tanh(x) = 2 g - 1 for the g just computed
            torch.mul(f[s], c[s], out=c[s + 1]).addcmul_(i[s], g[s], value=2).sub_(i[s])
            torch.mul(o[s], torch.tanh(c[s + 1], out=tanh_c[s]), out=h[s + 1])
        gates[:, :, 2].mul_(2).sub_(1)  # keep tanh(x) itself for the backward pass
        ctx.save_for_backward(x, gates, hs, cs, tanh_cs, weight_ih, weight_hh)
        return hs[1:], hs[t].clone(), cs[t].clone()

    @staticmethod
    def backward(ctx, grad_outputs, grad_final_h, grad_final_c):
        _no_second_derivative()
        x, gates, hs, cs, tanh_cs, weight_ih, weight_hh = ctx.saved_tensors
        t, b, _, hdim = gates.shape
        i, f, g, o = gates.unbind(2)  # each t b hdim
        # d_gates starts as what a unit dc (gates i, f, g) or a unit dh (gate o) of each step
        # contributes to the pre-activations; the loop then scales it by the carried gradient.
        d_gates = torch.empty_like(gates)  # t b 4 hdim
        _sigmoid_grad(g, i, out=d_gates[:, :, 0])
        _sigmoid_grad(cs[:-1], f, out=d_gates[:, :, 1])
        _tanh_grad(i, g, out=d_gates[:, :, 2])
        _sigmoid_grad(tanh_cs, o, out=d_gates[:, :, 3])
        dc_per_dh = _tanh_grad(o, tanh_cs, out=torch.empty_like(tanh_cs)).unbind(0)
        forget = f.unbind(0)
        dh = _incoming_state_grads(grad_outputs, grad_final_h).unbind(0)
        dc = grad_final_c.clone()  # the cell gradient carried backwards, b hdim
        dc_per_gate = dc.unsqueeze(1)  # b 1 hdim, a view of dc
        d_flat = d_gates.view(t, b, 4 * hdim)
        d_ifg, d_o, d_step = d_gates[:, :, :3].unbind(0), d_gates[:, :, 3].unbind(0), d_flat.unbind(0)
        for s in reversed(range(t)):
            dc.addcmul_(dh[s + 1], dc_per_dh[s])
            d_ifg[s].mul_(dc_per_gate)
            d_o[s].mul_(dh[s + 1])
            dc.mul_(forget[s])  # to the previous cell state
            dh[s].addmm_(d_step[s], weight_hh)  # to the previous hidden state, all gates at once
        grad_x, grad_weight_ih = _input_grads(ctx, d_flat, x, weight_ih)
        grad_weight_hh = _weight_grad(d_flat, hs[:-1])
        grad_bias = d_flat.sum((0, 1))
        return grad_x, dh[0], dc, grad_weight_ih, grad_weight_hh, grad_bias, grad_bias.clone()


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        t, b, _ = x.shape
        hdim = h0.shape[-1]
        # The input half of every step in one matmul. Unlike the LSTM's it stays apart from
        # W_hh h + b_hh, because the reset gate scales only the latter's third part.
        x_gates = torch.addmm(bias_ih, x.flatten(0, 1), weight_ih.t()).view(t, b, 3, hdim)
        hh = x.new_empty(t, b, 3, hdim)  # W_hh h + b_hh of every step
        reset_update = x.new_empty(t, b, 2, hdim)
        news = x.new_empty(t, b, hdim)
        hs = x.new_empty(t + 1, b, hdim)
        hs[0] = h0
        # Per-step views, made once.
        hh_flat, hh_ru, hh_new = hh.view(t, b, 3 * hdim).unbind(0), hh[:, :, :2].unbind(0), hh[:, :, 2].unbind(0)
        x_ru, x_new = x_gates[:, :, :2].unbind(0), x_gates[:, :, 2].unbind(0)
        ru, reset, update = reset_update.unbind(0), reset_update[:, :, 0].unbind(0), reset_update[:, :, 1].unbind(0)
        new, h, w_t = news.unbind(0), hs.unbind(0), weight_hh.t()
        for s in range(t):
            torch.addmm(bias_hh, h[s], w_t, out=hh_flat[s])  # all three gates in one matmul
            torch.add(x_ru[s], hh_ru[s], out=ru[s]).sigmoid_()
            torch.addcmul(x_new[s], reset[s], hh_new[s], out=new[s]).tanh_()
            torch.lerp(new[s], h[s], update[s], out=h[s + 1])  # (1 - z) n + z h
        ctx.save_for_backward(x, hh, reset_update, news, hs, weight_ih, weight_hh)
        return hs[1:], hs[t].clone()

    @staticmethod
    def backward(ctx, grad_outputs, grad_final_h):
        _no_second_derivative()
        x, hh, reset_update, news, hs, weight_ih, weight_hh = ctx.saved_tensors
        t, b, _, hdim = hh.shape
        r, z = reset_update.unbind(2)
        # Every pre-activation gradient is dh times a factor that does not depend on dh:
        # per_dh holds those of W_hh h + b_hh (reset, update, new gate), for all steps at once.
        per_dh = torch.empty_like(hh)
        d_new = _tanh_grad(1 - z, news, out=torch.empty_like(news))
        _sigmoid_grad(d_new * hh[:, :, 2], r, out=per_dh[:, :, 0])
        _sigmoid_grad(hs[:-1] - news, z, out=per_dh[:, :, 1])
        torch.mul(d_new, r, out=per_dh[:, :, 2])
        dh_all = _incoming_state_grads(grad_outputs, grad_final_h)
        d_hh = torch.empty_like(hh)
        d_hh_flat = d_hh.view(t, b, 3 * hdim)
        dh, dh_per_gate, factor = dh_all.unbind(0), dh_all.unsqueeze(2).unbind(0), per_dh.unbind(0)
        d_gates, d_step, update = d_hh.unbind(0), d_hh_flat.unbind(0), z.unbind(0)
        for s in reversed(range(t)):
            torch.mul(factor[s], dh_per_gate[s + 1], out=d_gates[s])
            dh[s].addcmul_(dh[s + 1], update[s])  # through h' = ... + z h
            dh[s].addmm_(d_step[s], weight_hh)  # through W_hh h, all gates at once
        d_x_gates = d_hh.clone()  # the input side shares the reset and update gradients,
        torch.mul(dh_all[1:], d_new, out=d_x_gates[:, :, 2])  # but W_in x is not scaled by the reset gate
        d_x_gates = d_x_gates.view(t, b, 3 * hdim)
        grad_x, grad_weight_ih = _input_grads(ctx, d_x_gates, x, weight_ih)
        grad_weight_hh = _weight_grad(d_hh_flat, hs[:-1])
        return (grad_x, dh[0], grad_weight_ih, grad_weight_hh, d_x_gates.sum((0, 1)), d_hh_flat.sum((0, 1)))
