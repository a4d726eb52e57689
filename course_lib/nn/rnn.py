"""Recurrent networks from scratch: the baseline that Transformers replaced.

Shape legend
    b  batch       t  time steps       i  input_size       hdim  hidden_size       l  num_layers
    k  gates per cell: 1 (RNN), 4 (LSTM: input, forget, cell, output), 3 (GRU: reset, update, new)

An RNN reads a sequence one step at a time, carrying a state ``h (b hdim)`` forward:

    RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)                         (Elman, 1990)
    LSTM  i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)                 (Hochreiter & Schmidhuber, 1997)
          c' = sigmoid(f) * c + sigmoid(i) * tanh(g);   h' = sigmoid(o) * tanh(c')
    GRU   r, z = sigmoid(...);  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   (Cho et al., 2014)
          h' = (1 - z) * n + z * h

Step ``s`` cannot start before step ``s - 1`` has finished: that sequential loop is what
attention removes. The sequence wrappers run it in one of two ways: ``impl="naive"`` is the
loop below, one cell step at a time with autograd recording each; ``impl="fused"`` (the
default) is the same loop with a hand-written backward pass, in ``rnn_fast.py``. Parameter names, gate order and shapes are those of ``torch.nn.RNNCell``,
``LSTMCell``, ``GRUCell`` (``weight_ih (k*hdim, i)``, ``weight_hh (k*hdim, hdim)``,
``bias_ih``, ``bias_hh``) and of ``torch.nn.RNN``/``LSTM``/``GRU`` (``weight_ih_l0``, ...),
so a state dict copies across unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rnn_fast import unroll_fused

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}
IMPLS = ("naive", "fused")


# One time step of each cell. ``xw (b k*hdim)`` is the input's contribution W_ih x + b_ih,
# computed outside the loop because it does not depend on the previous state.

def rnn_step(xw: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor, nonlinearity: str = "tanh") -> Tensor:
    return NONLINEARITIES[nonlinearity](xw + F.linear(h, weight_hh, bias_hh))


def lstm_step(xw: Tensor, h: Tensor, c: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> tuple[Tensor, Tensor]:
    in_gate, forget_gate, cell_input, out_gate = (xw + F.linear(h, weight_hh, bias_hh)).chunk(4, dim=-1)
    # The cell state is updated additively, so gradients can flow across many steps.
    c = torch.sigmoid(forget_gate) * c + torch.sigmoid(in_gate) * torch.tanh(cell_input)
    h = torch.sigmoid(out_gate) * torch.tanh(c)
    return h, c


def gru_step(xw: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    x_reset, x_update, x_new = xw.chunk(3, dim=-1)
    h_reset, h_update, h_new = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    reset = torch.sigmoid(x_reset + h_reset)
    update = torch.sigmoid(x_update + h_update)
    # The reset gate scales W_hn h + b_hn, bias included (torch's and cuDNN's variant).
    new = torch.tanh(x_new + reset * h_new)
    return (1 - update) * new + update * h


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    # torch's default: every weight and bias ~ U(-1/sqrt(hdim), 1/sqrt(hdim)).
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


def _check_state(name: str, state: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(state.shape) != expected:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(state.shape)}")


# ---------------------------------------------------------------------------------------------
# Cells: one step, x (b i) -> state (b hdim)
# ---------------------------------------------------------------------------------------------

class _Cell(nn.Module):
    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        k = self.num_gates
        self.weight_ih = nn.Parameter(torch.empty(k * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(k * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(k * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(k * hidden_size))
        _init_uniform(self, hidden_size)

    def _input_projection(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must have shape (b, {self.input_size}), got {tuple(x.shape)}")
        return F.linear(x, self.weight_ih, self.bias_ih)  # b k*hdim

    def _zeros_or_checked(self, name: str, state: Tensor | None, x: Tensor) -> Tensor:
        if state is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        _check_state(name, state, (x.shape[0], self.hidden_size))
        return state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_Cell):
    """Elman cell: ``forward(x (b i), state=None (b hdim)) -> h (b hdim)``; state defaults to zeros."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {tuple(NONLINEARITIES)}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        xw = self._input_projection(x)
        h = self._zeros_or_checked("state", state, x)
        return rnn_step(xw, h, self.weight_hh, self.bias_hh, self.nonlinearity)


class LSTMCell(_Cell):
    """LSTM cell: ``forward(x (b i), state=None ((b hdim), (b hdim))) -> (h, c)``; gates i, f, g, o."""

    num_gates = 4

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        xw = self._input_projection(x)
        h, c = (None, None) if state is None else state
        h = self._zeros_or_checked("state[0] (h)", h, x)
        c = self._zeros_or_checked("state[1] (c)", c, x)
        return lstm_step(xw, h, c, self.weight_hh, self.bias_hh)


class GRUCell(_Cell):
    """GRU cell: ``forward(x (b i), state=None (b hdim)) -> h (b hdim)``; gates r, z, n."""

    num_gates = 3

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        xw = self._input_projection(x)
        h = self._zeros_or_checked("state", state, x)
        return gru_step(xw, h, self.weight_hh, self.bias_hh)


# ---------------------------------------------------------------------------------------------
# Sequence wrappers: num_layers stacked cells unrolled over t
# ---------------------------------------------------------------------------------------------

class _Recurrent(nn.Module):
    num_gates = 1
    num_states = 1  # h, or (h, c) for the LSTM
    cell = ""  # the name unroll_fused knows this cell by

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True,
                 dropout: float = 0.0, impl: str = "fused"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must lie in [0, 1], got {dropout}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.dropout = dropout
        self.impl = impl
        k = self.num_gates
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size  # layer l reads layer l-1's outputs
            # Flat names like torch.nn.LSTM's (weight_ih_l0, ...), so its state dict loads as is.
            shapes = {
                "weight_ih": (k * hidden_size, layer_in),
                "weight_hh": (k * hidden_size, hidden_size),
                "bias_ih": (k * hidden_size,),
                "bias_hh": (k * hidden_size,),
            }
            for name, shape in shapes.items():
                self.register_parameter(f"{name}_l{layer}", nn.Parameter(torch.empty(shape)))
        _init_uniform(self, hidden_size)

    def layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` of one layer."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return tuple(getattr(self, f"{name}_l{layer}") for name in names)

    def _step(self, xw: Tensor, state: tuple[Tensor, ...], weight_hh: Tensor, bias_hh: Tensor):
        raise NotImplementedError

    def _unroll(self, xw: Tensor, state: tuple[Tensor, ...], weight_hh: Tensor, bias_hh: Tensor):
        """One layer, one step at a time: ``xw (t b k*hdim)`` -> ``(outputs (t b hdim), final state)``."""
        outputs = []
        # unbind, not xw[step]: each indexing op's backward would write a full-size
        # zero gradient, making the backward pass quadratic in t.
        for xw_step in xw.unbind(dim=0):
            state = self._step(xw_step, state, weight_hh, bias_hh)
            outputs.append(state[0])
        return torch.stack(outputs), state

    def _initial_state(self, x: Tensor, state) -> tuple[Tensor, ...]:
        expected = (self.num_layers, x.shape[1], self.hidden_size)  # x is t b i
        if state is None:
            return tuple(x.new_zeros(expected) for _ in range(self.num_states))
        state = (state,) if isinstance(state, Tensor) else tuple(state)
        if len(state) != self.num_states:
            raise ValueError(f"state must hold {self.num_states} tensor(s), got {len(state)}")
        names = ("state",) if self.num_states == 1 else ("state[0] (h)", "state[1] (c)")
        for name, s in zip(names, state):
            _check_state(name, s, expected)
        return state

    def forward(self, x: Tensor, state=None):
        """``x (b t i)`` (``(t b i)`` if not ``batch_first``) -> ``(outputs (b t hdim), final_state)``.

        ``state`` and ``final_state`` are ``h (l b hdim)``, or ``(h, c)`` for the LSTM; a
        missing state starts at zeros. ``outputs`` are the last layer's ``h`` at every step.
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size or x.shape[0] * x.shape[1] == 0:
            layout = "(b, t, {})" if self.batch_first else "(t, b, {})"
            raise ValueError(f"x must have shape {layout.format(self.input_size)} with b, t >= 1, "
                             f"got {tuple(x.shape)}")
        if self.batch_first:
            x = x.transpose(0, 1)  # t b i: time-major, so that one step's slice is contiguous
        initial = self._initial_state(x, state)
        layer_input, final = x, []
        for layer in range(self.num_layers):
            weight_ih, weight_hh, bias_ih, bias_hh = self.layer_weights(layer)
            layer_state = tuple(s[layer] for s in initial)  # each b hdim
            if self.impl == "fused":
                layer_input, layer_state = unroll_fused(self.cell, layer_input, layer_state, weight_ih,
                                                        weight_hh, bias_ih, bias_hh)
            else:
                # The input half of every step at once: one big matmul instead of t small ones.
                xw = F.linear(layer_input, weight_ih, bias_ih)  # t b k*hdim
                layer_input, layer_state = self._unroll(xw, layer_state, weight_hh, bias_hh)  # t b hdim
            final.append(layer_state)
            if layer < self.num_layers - 1:  # as in torch: dropout between layers, not after the last
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        final_state = tuple(torch.stack(states, dim=0) for states in zip(*final))  # each l b hdim
        outputs = layer_input.transpose(0, 1) if self.batch_first else layer_input
        return outputs, (final_state[0] if self.num_states == 1 else final_state)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, impl={self.impl!r}")


class RNN(_Recurrent):
    """Multi-layer Elman RNN, a drop-in for ``torch.nn.RNN`` (unidirectional, with biases).

    Args: ``input_size``, ``hidden_size``, ``num_layers``, ``batch_first``, ``dropout``
    (between layers, in training only), ``nonlinearity`` ("tanh" or "relu"), ``impl``
    ("fused", or "naive" for the step-by-step loop that autograd records; the same for LSTM and GRU).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True,
                 dropout: float = 0.0, nonlinearity: str = "tanh", impl: str = "fused"):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {tuple(NONLINEARITIES)}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, batch_first, dropout, impl)
        self.nonlinearity = nonlinearity
        self.cell = f"rnn_{nonlinearity}"

    def _step(self, xw, state, weight_hh, bias_hh):
        return (rnn_step(xw, state[0], weight_hh, bias_hh, self.nonlinearity),)


class LSTM(_Recurrent):
    """Multi-layer LSTM, a drop-in for ``torch.nn.LSTM``; the state is ``(h, c)``, each ``(l b hdim)``."""

    num_gates = 4
    num_states = 2
    cell = "lstm"

    def _step(self, xw, state, weight_hh, bias_hh):
        return lstm_step(xw, state[0], state[1], weight_hh, bias_hh)


class GRU(_Recurrent):
    """Multi-layer GRU, a drop-in for ``torch.nn.GRU``; the state is ``h (l b hdim)``."""

    num_gates = 3
    cell = "gru"

    def _step(self, xw, state, weight_hh, bias_hh):
        return (gru_step(xw, state[0], weight_hh, bias_hh),)
