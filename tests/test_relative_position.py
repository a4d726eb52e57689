"""T5's bucketed relative position bias, against Hugging Face's reference."""
from __future__ import annotations

import pytest
import torch

from course_lib.nn import RelativePositionBias, relative_position_bucket

transformers = pytest.importorskip("transformers")
T5Attention = transformers.models.t5.modeling_t5.T5Attention

SETTINGS = [(32, 128), (8, 16), (16, 20), (6, 5)]  # (num_buckets, max_distance), T5's own first


@pytest.mark.parametrize("bidirectional", [True, False], ids=["encoder", "decoder"])
@pytest.mark.parametrize("num_buckets, max_distance", SETTINGS)
def test_buckets_match_hugging_face(num_buckets, max_distance, bidirectional):
    relative = torch.arange(-300, 301)[None, :] + torch.tensor([[0], [7]])  # 2 601, int64
    expected = T5Attention._relative_position_bucket(relative, bidirectional=bidirectional,
                                                     num_buckets=num_buckets, max_distance=max_distance)
    got = relative_position_bucket(relative, bidirectional, num_buckets, max_distance)
    assert torch.equal(got, expected)
    assert got.min() >= 0 and got.max() < num_buckets


def test_buckets_follow_the_layout():
    relative = torch.arange(-200, 201)
    bidirectional = relative_position_bucket(relative, True, 32, 128)
    causal = relative_position_bucket(relative, False, 32, 128)
    left, right = bidirectional[relative < 0], bidirectional[relative > 0]
    assert left.max() < 16 <= right.min(), "keys to the left and right of the query use separate halves"
    assert (causal[relative >= 0] == 0).all(), "a causal decoder puts every future key in bucket 0"
    exact = relative_position_bucket(-torch.arange(16), False, 32, 128)
    assert exact.tolist() == list(range(16)), "the first half of the causal buckets count distances exactly"
    assert (causal[relative <= -128] == 31).all(), "distances past max_distance share the last bucket"


@pytest.mark.parametrize("bidirectional", [True, False], ids=["encoder", "decoder"])
@pytest.mark.parametrize("t, s", [(7, 7), (1, 9), (3, 10)])
def test_bias_matches_hugging_face_compute_bias(bidirectional, t, s):
    config = transformers.T5Config(d_model=16, d_kv=4, num_heads=4, relative_attention_num_buckets=8,
                                   relative_attention_max_distance=12, is_decoder=not bidirectional)
    hf = T5Attention(config, has_relative_attention_bias=True, layer_idx=0)
    ours = RelativePositionBias(num_heads=4, num_buckets=8, max_distance=12, bidirectional=bidirectional)
    with torch.no_grad():
        hf.relative_attention_bias.weight.normal_()
        ours.weight.copy_(hf.relative_attention_bias.weight)
        # t new queries after s - t cached tokens, as while decoding with a KV cache
        expected = hf.compute_bias(t, s, past_seen_tokens=s - t)
        got = ours(t, s)
    assert got.shape == (1, 4, t, s)
    assert torch.equal(got, expected)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="integer"):
        relative_position_bucket(torch.zeros(3), True, 32, 128)
    with pytest.raises(ValueError, match="num_buckets"):
        RelativePositionBias(num_heads=2, num_buckets=2, bidirectional=True)
    with pytest.raises(ValueError, match="max_distance"):
        RelativePositionBias(num_heads=2, num_buckets=32, max_distance=8)
    with pytest.raises(ValueError, match="t <= s"):
        RelativePositionBias(num_heads=2)(5, 3)
