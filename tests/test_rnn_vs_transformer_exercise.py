"""The RNN/LSTM-cell assignment graded end to end: typical mistakes lose exactly the points of
the part they break, a shortcut through PyTorch's own kernel is caught even under another name,
and other correct implementations get full marks."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

RNN_INIT = """
    self.hidden_size = hidden_size
    bound = 1.0 / math.sqrt(hidden_size)
    self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-bound, bound))
    self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
    self.bias_ih = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
    self.bias_hh = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
"""
LSTM_INIT = RNN_INIT.replace("(hidden_size, input_size)", "(4 * hidden_size, input_size)").replace(
    "(hidden_size, hidden_size)", "(4 * hidden_size, hidden_size)").replace(
    "torch.empty(hidden_size)", "torch.empty(4 * hidden_size)")

# --- Typical mistakes -------------------------------------------------------------------

# Only one bias: torch's cells have two, and both are trained.
ONE_BIAS = """
    if h is None:
        h = x.new_zeros(x.shape[0], self.hidden_size)
    return torch.tanh(x @ self.weight_ih.T + h @ self.weight_hh.T + self.bias_ih)
"""

# Gates read in the order i, f, o, g (as some papers write them) instead of PyTorch's i, f, g, o.
GATE_ORDER = """
    if state is None:
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        state = (zeros, zeros)
    h, c = state
    gates = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh
    i, f, o, g = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
"""

# PyTorch's fused kernel, fetched under another name: right numbers, caught at run time.
ALIASED_KERNEL = """
    from torch import lstm_cell as fused_step
    if state is None:
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        state = (zeros, zeros)
    return fused_step(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
"""

# The same kernel through the operator registry.
ATEN_KERNEL = """
    if state is None:
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        state = (zeros, zeros)
    return tuple(torch.ops.aten.lstm_cell(x, list(state), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))
"""

# Collects the whole state for an LSTM, i.e. stacks c where h belongs.
COLLECTS_CELL_STATE = """
    outputs = []
    for step in range(x.shape[1]):
        state = cell(x[:, step], state)
        outputs.append(state[-1] if isinstance(state, tuple) else state)
    return torch.stack(outputs, dim=1), state
"""

# --- Correct alternatives ---------------------------------------------------------------

CONCAT_INIT = """
    self.hidden_size = hidden_size
    self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
    self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
    self.bias_ih = nn.Parameter(torch.empty(hidden_size))
    self.bias_hh = nn.Parameter(torch.empty(hidden_size))
    for p in self.parameters():
        nn.init.uniform_(p, -hidden_size ** -0.5, hidden_size ** -0.5)
"""
CONCAT_FORWARD = """
    if h is None:
        h = torch.zeros(len(x), self.hidden_size, dtype=x.dtype, device=x.device)
    both = torch.cat([x, h], dim=-1)
    weights = torch.cat([self.weight_ih, self.weight_hh], dim=1)
    return torch.tanh(both @ weights.T + (self.bias_ih + self.bias_hh))
"""
EINSUM_LSTM = """
    batch, size = x.shape[0], self.hidden_size
    if state is None:
        state = (torch.zeros(batch, size, dtype=x.dtype, device=x.device),) * 2
    h, c = state
    pre = torch.einsum("bi,gi->bg", x, self.weight_ih) + torch.einsum("bj,gj->bg", h, self.weight_hh)
    pre = pre + self.bias_hh + self.bias_ih
    input_gate = torch.sigmoid(pre[:, :size])
    forget_gate = torch.sigmoid(pre[:, size : 2 * size])
    candidate = torch.tanh(pre[:, 2 * size : 3 * size])
    output_gate = torch.sigmoid(pre[:, 3 * size :])
    new_c = forget_gate * c + input_gate * candidate
    return output_gate * torch.tanh(new_c), new_c
"""
PREALLOCATED_UNROLL = """
    batch, steps = x.shape[:2]
    outputs = None
    step = 0
    while step < steps:
        state = cell(x[:, step, :], state)
        h = state[0] if isinstance(state, (tuple, list)) else state
        if outputs is None:
            outputs = x.new_empty(batch, steps, h.shape[-1])
        outputs[:, step] = h
        step += 1
    return outputs, state
"""


def test_rnn_cells_mistakes_and_alternatives(tmp_path):
    # Slips in parts whose tests do not call each other's answers share a notebook (each notebook
    # costs seconds of kernel start): the parts are graded apart, so each still loses exactly its cells.
    # The three LSTM-cell slips share one cell, so they need three notebooks.
    submissions = {
        "one_bias+gate_order": {"rnn_cell": [RNN_INIT, ONE_BIAS], "lstm_cell": [LSTM_INIT, GATE_ORDER]},
        "aliased_kernel+collects_cell_state": {"lstm_cell": [LSTM_INIT, ALIASED_KERNEL],
                                               "unroll": [COLLECTS_CELL_STATE]},
        "aten_kernel": {"lstm_cell": [LSTM_INIT, ATEN_KERNEL]},
        "alternative": {"rnn_cell": [CONCAT_INIT, CONCAT_FORWARD],
                        "lstm_cell": [LSTM_INIT, EINSUM_LSTM],
                        "unroll": [PREALLOCATED_UNROLL]},
    }
    graded = grade_variants("rnn_vs_transformer", submissions, tmp_path)

    points, total, without = graded.points, graded.total, graded.without

    expected = {
        "alternative": total,
        # one_bias: the visible test with zero inputs checks tanh(b_ih + b_hh). gate_order: the
        # visible comparison with torch.nn.LSTMCell catches the order; unroll is tested with
        # torch's own cells, so it keeps its points.
        "one_bias+gate_order": without("test_rnn_cell_visible", "test_rnn_cell_hidden",
                                       "test_lstm_cell_visible", "test_lstm_cell_hidden"),
        # The kernels give the same numbers as the solution, so the visible tests pass; the
        # grader sees the fused kernel called at run time and the part is flagged (0 points).
        "aliased_kernel+collects_cell_state": (total - graded.part("lstm_cell")
                                               - points["test_unroll_visible"] - points["test_unroll_hidden"]),
        "aten_kernel": total - graded.part("lstm_cell"),
    }
    assert 0 < expected["one_bias+gate_order"] < expected["aten_kernel"] < total
    graded.check(expected, flagged={"aliased_kernel+collects_cell_state": ["lstm_cell"], "aten_kernel": ["lstm_cell"]})
