"""KVCache: preallocated buffers that grow by views, reset, and refuse to overflow."""
from __future__ import annotations

import pytest
import torch

from course_lib.nn import KVCache


def supports(dtype, device):
    return not (dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_update_appends_and_returns_views(dtype, device):
    if not supports(dtype, device):
        pytest.skip(f"{dtype} unsupported on {device}")
    cache = KVCache(batch_size=2, num_kv_heads=3, max_len=6, head_dim=4, dtype=dtype, device=device)
    assert cache.k_cache.shape == (2, 3, 6, 4) and cache.k_cache.dtype == dtype
    assert cache.k_cache.device.type == device.type and cache.length == 0
    chunks = [torch.randn(2, 3, n, 4, device=device, dtype=dtype) for n in (3, 1, 2)]
    seen = 0
    for n, k in zip((3, 1, 2), chunks):
        k_all, v_all = cache.update(k, -k)
        seen += n
        assert cache.length == seen and k_all.shape == (2, 3, seen, 4)
        assert torch.equal(k_all, torch.cat(chunks, dim=2)[:, :, :seen])
        assert torch.equal(v_all, -k_all)
        # views into the preallocated buffers: no copy of the prefix per step
        assert k_all.data_ptr() == cache.k_cache.data_ptr() and v_all.data_ptr() == cache.v_cache.data_ptr()


def test_overflow_raises_and_reset_starts_over(device):
    cache = KVCache(1, 1, max_len=4, head_dim=2, dtype=torch.float32, device=device)
    cache.update(torch.ones(1, 1, 3, 2, device=device), torch.ones(1, 1, 3, 2, device=device))
    with pytest.raises(ValueError, match=r"overflow: 3 cached \+ 2 new .*\(1, 1, 2, 2\).*max_len=4"):
        cache.update(torch.ones(1, 1, 2, 2, device=device), torch.ones(1, 1, 2, 2, device=device))
    assert cache.length == 3, "a refused update must leave the cache as it was"
    cache.reset()
    assert cache.length == 0 and not cache.k_cache.any() and not cache.v_cache.any()
    k_all, _ = cache.update(torch.full((1, 1, 4, 2), 2.0, device=device), torch.zeros(1, 1, 4, 2, device=device))
    assert k_all.shape == (1, 1, 4, 2) and (k_all == 2).all()


def test_buffers_are_not_checkpointed_but_follow_the_module(device):
    cache = KVCache(1, 2, 3, 4, dtype=torch.float64, device="cpu")
    assert cache.state_dict() == {}, "a cache is working memory, not model state"
    moved = cache.to(device)
    assert moved.k_cache.device.type == device.type and moved.k_cache.dtype == torch.float64


def test_bad_input_names_argument_and_shapes():
    cache = KVCache(batch_size=2, num_kv_heads=2, max_len=5, head_dim=4, dtype=torch.float32, device="cpu")
    good = torch.zeros(2, 2, 1, 4)
    with pytest.raises(ValueError, match=r"k must have shape \(b, g, t, d\) = \(2, 2, t, 4\).*got \(2, 2, 1, 8\)"):
        cache.update(torch.zeros(2, 2, 1, 8), good)  # wrong head_dim
    with pytest.raises(ValueError, match=r"v must have shape .*got \(2, 4, 1, 4\)"):
        cache.update(good, torch.zeros(2, 4, 1, 4))  # wrong number of kv heads
    with pytest.raises(ValueError, match=r"k must have shape .*got \(2, 1, 4\)"):
        cache.update(torch.zeros(2, 1, 4), good)  # wrong rank
    with pytest.raises(ValueError, match=r"k and v must add the same number.*\(2, 2, 2, 4\).*\(2, 2, 1, 4\)"):
        cache.update(torch.zeros(2, 2, 2, 4), good)
    with pytest.raises(ValueError, match="k has dtype torch.float64 but the cache holds torch.float32"):
        cache.update(good.double(), good)
    with pytest.raises(ValueError, match="max_len must be positive, got 0"):
        KVCache(1, 1, 0, 4, dtype=torch.float32, device="cpu")
    assert cache.length == 0


def test_reorder_moves_filled_rows_in_place(device):
    cache = KVCache(batch_size=4, num_kv_heads=2, max_len=5, head_dim=3, dtype=torch.float32, device=device)
    k, v = torch.randn(4, 2, 3, 3, device=device), torch.randn(4, 2, 3, 3, device=device)
    cache.update(k, v)
    k_ptr = cache.k_cache.data_ptr()
    parents = torch.tensor([2, 2, 0, 3], device=device)  # row 1 dropped, row 2 picked twice
    cache.reorder(parents)
    assert cache.k_cache.data_ptr() == k_ptr and cache.length == 3, "same buffers, same length"
    assert torch.equal(cache.k_cache[:, :, :3], k[parents]) and torch.equal(cache.v_cache[:, :, :3], v[parents])
    assert not cache.k_cache[:, :, 3:].any(), "positions past length are not touched"
    k_new = torch.randn(4, 2, 1, 3, device=device)
    k_all, _ = cache.update(k_new, k_new)
    assert torch.equal(k_all, torch.cat([k[parents], k_new], dim=2))
    with pytest.raises(ValueError, match=r"indices must be an integer tensor of shape \(4,\).*got shape \(3,\)"):
        cache.reorder(torch.tensor([0, 1, 2], device=device))
    with pytest.raises(ValueError, match=r"dtype torch.float32"):
        cache.reorder(torch.zeros(4, device=device))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\), got values from 0 to 4"):
        cache.reorder(torch.tensor([0, 1, 2, 4], device=device))


def test_writes_go_into_the_same_preallocated_buffers(device):
    cache = KVCache(batch_size=2, num_kv_heads=1, max_len=8, head_dim=2, dtype=torch.float32, device=device)
    buffers = (cache.k_cache, cache.v_cache)
    ptrs = (cache.k_cache.data_ptr(), cache.v_cache.data_ptr())
    for n in (3, 1, 1):
        cache.update(torch.randn(2, 1, n, 2, device=device), torch.randn(2, 1, n, 2, device=device))
    assert (cache.k_cache, cache.v_cache) == buffers and (cache.k_cache.data_ptr(), cache.v_cache.data_ptr()) == ptrs


def test_use_position_writes_at_a_device_side_position_with_fixed_shapes(device):
    cache = KVCache(batch_size=2, num_kv_heads=2, max_len=6, head_dim=3, dtype=torch.float32, device=device)
    prompt = torch.randn(2, 2, 3, 3, device=device)
    cache.update(prompt, -prompt)
    where = torch.tensor([3], device=device)
    cache.use_position(where)
    with pytest.raises(RuntimeError, match="device-side position"):
        cache.length  # noqa: B018  (the host no longer knows it)
    steps = []
    for _ in range(2):
        k = torch.randn(2, 2, 1, 3, device=device)
        k_all, v_all = cache.update(k, -k)
        assert k_all.shape == (2, 2, 6, 3), "the whole buffer, the same shape at every step"
        assert k_all.data_ptr() == cache.k_cache.data_ptr()
        steps.append(k)
        where += 1
    assert torch.equal(cache.k_cache[:, :, :5], torch.cat([prompt, *steps], dim=2))
    assert torch.equal(cache.v_cache[:, :, :5], -cache.k_cache[:, :, :5])
    with pytest.raises(ValueError, match="one position per update"):
        cache.update(torch.randn(2, 2, 2, 3, device=device), torch.randn(2, 2, 2, 3, device=device))
    cache.use_position(None)  # back to appending, from where the position stands
    assert cache.length == 5
    with pytest.raises(ValueError, match=r"position must be a \(1,\) long tensor"):
        cache.use_position(torch.tensor(3, device=device))
