"""The positional-encoding assignment graded end to end: typical mistakes lose exactly the
points of the part they break, and other correct implementations get full marks."""
from __future__ import annotations

import textwrap

import pytest

from tests.nbgrader_helpers import SOLUTIONS, grade_variants, replace_solution

pytestmark = pytest.mark.slow

SOURCE = SOLUTIONS / "positional" / "positional.ipynb"


def body(code: str) -> str:
    """A function body for replace_solution: the marker's own indentation stays in front of
    the first line, so only the following lines are indented here."""
    return textwrap.indent(textwrap.dedent(code).strip("\n"), "    ").lstrip()


# --- Typical mistakes -------------------------------------------------------------------

# sin in the first half and cos in the second, instead of interleaved.
SIN_COS_HALVES = body("""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    omega = base ** (-torch.arange(0, embed_dim, 2, dtype=torch.float32) / embed_dim)
    return torch.cat((torch.sin(pos * omega), torch.cos(pos * omega)), dim=-1)
""")

# Neighbouring features (2i, 2i+1) paired instead of (i, i + d/2): the rotation is still a
# rotation, but not the library's (or Llama's) layout, so RoPE built on it is wrong too.
ROTATE_NEIGHBOURS = body("""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)
""")

# Forgets the offset: every call rotates as if the first token sat at position 0.
ROPE_NO_OFFSET = body("""
    d = q.shape[-1]
    theta = 1.0 / base ** (torch.arange(0, d, 2, dtype=q.dtype) / d)
    angles = torch.arange(q.shape[-2], dtype=q.dtype)[:, None] * theta
    angles = torch.cat((angles, angles), dim=-1)
    return (q * angles.cos() + rotate_half(q) * angles.sin(),
            k * angles.cos() + rotate_half(k) * angles.sin())
""")

# --- Correct alternatives ---------------------------------------------------------------

# The "div_term" recipe in float32, with exp and log instead of a power.
SIN_EXP_LOG = body("""
    div = torch.exp(torch.arange(0, embed_dim, 2).float() * (-math.log(base) / embed_dim))
    pos = torch.arange(max_len).float().unsqueeze(1)
    pe = torch.zeros(max_len, embed_dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe
""")

ROTATE_UNFLATTEN = body("""
    first, second = x.unflatten(-1, (2, -1)).unbind(-2)
    return torch.stack((-second, first), dim=-2).flatten(-2)
""")

# RoPE as a multiplication by unit complex numbers: pair i is the complex number
# x_i + j x_{i+d/2}; it does not call rotate_half at all.
ROPE_COMPLEX = body("""
    half = q.shape[-1] // 2
    positions = torch.arange(q.shape[-2], dtype=torch.float64) + offset
    inv_freq = 1.0 / base ** (torch.arange(half, dtype=torch.float64) * 2 / q.shape[-1])
    phasor = torch.polar(torch.ones(q.shape[-2], half, dtype=torch.float64),
                         torch.einsum("t,f->tf", positions, inv_freq))

    def turn(x):
        z = torch.complex(x[..., :half].double(), x[..., half:].double()) * phasor
        return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)

    return turn(q), turn(k)
""")


def test_positional_mistakes_and_alternatives(tmp_path):
    def variant(name: str, replacements: dict[str, str]):
        path = SOURCE
        for grade_id, code in replacements.items():
            path = replace_solution(path, grade_id, code, tmp_path / name / "positional.ipynb")
        return path

    # Slips in parts whose tests do not call each other's answers share a notebook (each notebook
    # costs seconds of kernel start): the parts are graded apart, so each still loses exactly its cells.
    # apply_rope calls the learner's rotate_half, so the neighbours' rotation stays alone.
    submissions = {
        "halves+no_offset": variant("halves+no_offset", {"sinusoidal_encoding": SIN_COS_HALVES,
                                                         "apply_rope": ROPE_NO_OFFSET}),
        "neighbours": variant("neighbours", {"rotate_half": ROTATE_NEIGHBOURS}),
        "alternative": variant("alternative", {"sinusoidal_encoding": SIN_EXP_LOG,
                                               "rotate_half": ROTATE_UNFLATTEN,
                                               "apply_rope": ROPE_COMPLEX}),
    }
    graded = grade_variants("positional", submissions, tmp_path)
    total = graded.total

    def without(*parts: str) -> float:
        return total - sum(graded.part(part) for part in parts)

    expected = {
        "alternative": total,
        # Only part 1 uses the table; the visible offset test already catches the missing offset:
        # all of part 3.
        "halves+no_offset": without("sinusoidal_encoding", "apply_rope"),
        # apply_rope calls the learner's rotate_half, so parts 2 and 3 both fail.
        "neighbours": without("rotate_half", "apply_rope"),
    }
    assert 0 < expected["halves+no_offset"] < expected["neighbours"] < total
    graded.check(expected)
