"""The pretraining assignment graded end to end in one batch: typical mistakes lose exactly the
points of the cells they break (one sentinel per token breaks the whole span-corruption part,
sentinels taken in another order than the list's only the hidden structure test, fixed-length
infilling spans the visible infilling test and the hidden Poisson statistics), a call to the
library's noising is flagged, and correct implementations in other styles (T5's own layout,
vectorised) get full marks."""
from __future__ import annotations

from functools import partial

import pytest

from tests import nbgrader_helpers as helpers
from tests.nbgrader_helpers import SOLUTIONS, grade_variants

pytestmark = pytest.mark.slow

SOURCE = SOLUTIONS / "pretraining" / "pretraining.ipynb"
solution_body = partial(helpers.solution_body, SOURCE)


SPAN = solution_body("span_corruption")
INFILL = solution_body("text_infilling")

# --- Typical mistakes -------------------------------------------------------------------

# A sentinel for every hidden token: (inputs, targets) still give back ids, but the sentinels
# of a span are adjacent and every "span" is one token long.
PER_TOKEN = ("""    for k, (place, length) in enumerate(zip(places, lengths)):
        inputs += tokens[pos:pos + place - kept] + [sentinel_ids[k]]
        pos, kept = pos + place - kept, place
        targets += [sentinel_ids[k]] + tokens[pos:pos + length]
        pos += length
    inputs += tokens[pos:]
    targets.append(sentinel_ids[num_spans])
""", """    k = 0
    for place, length in zip(places, lengths):
        inputs += tokens[pos:pos + place - kept]
        pos, kept = pos + place - kept, place
        for token in tokens[pos:pos + length]:
            inputs.append(sentinel_ids[k])
            targets += [sentinel_ids[k], token]
            k += 1
        pos += length
    inputs += tokens[pos:]
    targets.append(sentinel_ids[k])
""")

# Takes the sentinels from the largest id down, as T5's vocabulary orders them, instead of in
# the order of the list: right for the visible tests' decreasing ids, wrong for the hidden
# tests' shuffled ones.
SORTED_SENTINELS = ("    t = ids.numel()\n",
                    "    t = ids.numel()\n    sentinel_ids = sorted(sentinel_ids, reverse=True)\n")

# Every span as long as the mean: no span of length 0, a variance of 0.
FIXED_LENGTH = ("int(torch.poisson(rate, generator=generator))", "round(poisson_lambda)")

# The library's T5 span corruption, which this assignment forbids: flagged, the part scores 0.
CALLS_LIBRARY = """
from course_lib.models.noising import t5_span_corruption
return t5_span_corruption(ids, list(sentinel_ids), noise_density, mean_span_length, generator=generator)
"""

# --- Correct alternatives ---------------------------------------------------------------

# T5's own layout (a kept run first, then span and kept run in turn, ending with a span), with
# the cut points drawn by torch.multinomial; BART's spans placed one at a time, each in a
# free place drawn with torch.randint.
T5_LAYOUT_SPAN = """
t = len(ids)
n = min(max(round(t * noise_density), 1), t - 1)
m = max(1, min(round(n / mean_span_length), t - n))
if len(sentinel_ids) <= m:
    raise ValueError(f"need {m + 1} sentinel ids, got {len(sentinel_ids)}")

def random_parts(total, parts):
    cuts = []
    if parts > 1:
        cuts = sorted((torch.multinomial(torch.ones(total - 1), parts - 1, generator=generator) + 1).tolist())
    edges = [0] + cuts + [total]
    return [b - a for a, b in zip(edges, edges[1:])]

noise_runs, kept_runs = random_parts(n, m), random_parts(t - n, m)
inputs, targets, i = [], [], 0
for k in range(m):
    inputs.extend(ids[i:i + kept_runs[k]].tolist())
    i += kept_runs[k]
    inputs.append(sentinel_ids[k])
    targets.append(sentinel_ids[k])
    targets.extend(ids[i:i + noise_runs[k]].tolist())
    i += noise_runs[k]
targets.append(sentinel_ids[m])
return torch.tensor(inputs, dtype=ids.dtype), torch.tensor(targets, dtype=ids.dtype)
"""

ONE_AT_A_TIME_INFILL = """
t = ids.shape[0]
budget = round(t * mask_ratio)
lengths = []
while sum(lengths) < budget:
    drawn = int(torch.poisson(torch.tensor([poisson_lambda]), generator=generator).item())
    lengths.append(min(drawn, budget - sum(lengths)))
free = list(range(t - budget + 1))
span_before = {}
for length in lengths:
    span_before[free.pop(int(torch.randint(len(free), (1,), generator=generator)))] = length
out, i = [], 0
for kept in range(t - budget + 1):
    if kept in span_before:
        out.append(mask_id)
        i += span_before[kept]
    if i < t:
        out.append(int(ids[i]))
        i += 1
return torch.tensor(out, dtype=ids.dtype)
"""

# No Python loop over tokens: positions from cumulative sums, outputs by boolean indexing.
VECTORISED_SPAN = """
t = ids.numel()
n = min(max(round(t * noise_density), 1), t - 1)
m = min(max(round(n / mean_span_length), 1), n, t - n + 1)
if len(sentinel_ids) < m + 1:
    raise ValueError(f"{m} spans need {m + 1} sentinel ids")
sentinels = torch.tensor(sentinel_ids[:m + 1], dtype=ids.dtype)
cuts = torch.randperm(n - 1, generator=generator)[:m - 1].sort().values + 1
lengths = torch.cat([torch.zeros(1, dtype=torch.long), cuts, torch.tensor([n])]).diff()  # (m,)
places = torch.randperm(t - n + 1, generator=generator)[:m].sort().values  # kept tokens before each span
noise = torch.zeros(t, dtype=torch.bool)
noise[torch.repeat_interleave(places, lengths) + torch.arange(n)] = True
first = noise & ~torch.cat([torch.zeros(1, dtype=torch.bool), noise[:-1]])  # (t,) a span's first token
span = (first.long().cumsum(0) - 1).clamp(min=0)  # (t,)
inputs = torch.where(first, sentinels[span], ids)[~noise | first]
pairs, take = torch.stack([sentinels[span], ids], dim=1), torch.stack([first, noise], dim=1)  # (t, 2)
return inputs, torch.cat([pairs[take], sentinels[m:]])
"""

VECTORISED_INFILL = """
t = ids.numel()
budget = round(t * mask_ratio)
if budget == 0:
    return ids.clone()
draws = torch.zeros(0, dtype=torch.long)
while draws.sum() < budget:  # in batches; the first nearly always covers the budget
    draws = torch.cat([draws, torch.poisson(torch.full((budget,), float(poisson_lambda)), generator=generator).long()])
covered = draws.cumsum(0)
m = int((covered < budget).sum()) + 1
lengths = draws[:m].clone()
lengths[-1] -= covered[m - 1] - budget
kept = t - budget
places = torch.randperm(kept + 1, generator=generator)[:m]
hidden_at = torch.zeros(kept + 1, dtype=torch.long).index_put((places,), lengths)
has_span = torch.zeros(kept + 1, dtype=torch.long).index_put((places,), torch.ones(m, dtype=torch.long))
masks_so_far = has_span.cumsum(0)  # (kept + 1,) spans in places 0..p
out = torch.empty(kept + m, dtype=ids.dtype)
out[torch.arange(kept) + masks_so_far[:kept]] = ids[torch.arange(kept) + hidden_at.cumsum(0)[:kept]]
out[(torch.arange(kept + 1) + masks_so_far - 1)[has_span.bool()]] = mask_id
return out
"""


def edited(body: str, old: str, new: str) -> str:
    # Each edit must find its line in the solution, or the "mistake" would be the solution.
    assert body.count(old) == 1, old
    return body.replace(old, new)


def test_pretraining_mistakes_and_alternatives(tmp_path):
    # Two slips in different parts share a notebook (each notebook costs seconds of kernel start):
    # the parts are graded apart, so the points lost still name the cells each slip breaks.
    variants = {
        "one_sentinel_per_token": {"span_corruption": [edited(SPAN, *PER_TOKEN)]},
        "sorted_sentinels_fixed_spans": {"span_corruption": [edited(SPAN, *SORTED_SENTINELS)],
                                         "text_infilling": [edited(INFILL, *FIXED_LENGTH)]},
        "calls_library": {"span_corruption": [CALLS_LIBRARY]},
        "t5_layout": {"span_corruption": [T5_LAYOUT_SPAN], "text_infilling": [ONE_AT_A_TIME_INFILL]},
        "vectorised": {"span_corruption": [VECTORISED_SPAN], "text_infilling": [VECTORISED_INFILL]},
    }
    graded = grade_variants("pretraining", variants, tmp_path)
    full = graded.total
    graded.check({
        "one_sentinel_per_token": full - graded.part("span_corruption"),
        "sorted_sentinels_fixed_spans": graded.without("test_span_corruption_hidden", "test_text_infilling_visible",
                                                       "test_text_infilling_statistics_hidden"),
        "calls_library": full - graded.part("span_corruption"),
        "t5_layout": full, "vectorised": full,
    }, flagged={"calls_library": ["span_corruption"]})
