"""Decoding helpers: filters, sampling, the generation loop and beam search."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from course_lib.generate import beam_search, generate_tokens, sample_next_token, top_k_filter, top_p_filter
from tests.models_helpers import one_thread  # noqa: F401  (autouse fixture)


def nucleus(probs: list[float], p: float) -> set[int]:
    """The allowed set by definition: the fewest most-likely tokens with total mass >= p."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return kept


@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_never_samples_outside_the_k_largest(device, k):
    logits = torch.randn(40, dtype=torch.float64).to(device) * 2
    allowed = set(torch.topk(logits, k).indices.tolist())
    gen = torch.Generator(device=device).manual_seed(1)
    draws = sample_next_token(logits.expand(3000, -1), temperature=1.0, top_k=k, generator=gen)
    seen = set(draws.tolist())
    assert seen <= allowed, f"top-{k} sampled {sorted(seen - allowed)}, outside the {k} largest logits"
    assert seen == allowed, f"top-{k} never sampled {sorted(allowed - seen)} in 3000 draws"


@pytest.mark.parametrize("p", [0.3, 0.75, 0.95])
def test_top_p_never_samples_outside_the_nucleus(device, p):
    logits = torch.randn(30, dtype=torch.float64) * 2
    allowed = nucleus(logits.softmax(-1).tolist(), p)
    gen = torch.Generator(device=device).manual_seed(2)
    draws = sample_next_token(logits.to(device).expand(4000, -1), temperature=1.0, top_p=p, generator=gen)
    seen = set(draws.tolist())
    assert seen <= allowed, f"top-p={p} sampled {sorted(seen - allowed)}, outside the nucleus {sorted(allowed)}"
    assert seen == allowed, f"top-p={p} never sampled {sorted(allowed - seen)} in 4000 draws"


def test_filters_keep_exactly_the_allowed_logits():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0, -1.0]])
    assert torch.isfinite(top_k_filter(logits, 2)).tolist() == [[False, True, True, False, False]]
    probs = logits.softmax(-1)[0].tolist()
    kept = torch.isfinite(top_p_filter(logits, 0.8))[0]
    assert set(kept.nonzero().flatten().tolist()) == nucleus(probs, 0.8)
    # The most likely token survives even a tiny p.
    assert torch.isfinite(top_p_filter(logits, 1e-6))[0].nonzero().flatten().tolist() == [1]


def test_temperature_zero_is_argmax_and_low_temperature_concentrates():
    logits = torch.randn(5, 20)
    assert torch.equal(sample_next_token(logits, temperature=0.0), logits.argmax(-1))
    gen = torch.Generator().manual_seed(0)
    draws = sample_next_token(logits[:1].expand(500, -1), temperature=0.01, generator=gen)
    assert (draws == logits[0].argmax()).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(torch.randn(1, 5), 0)
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(torch.randn(1, 5), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(torch.randn(1, 5), temperature=-1.0)
    with pytest.raises(ValueError, match="early_stopping"):
        beam_search(lambda s: torch.zeros(s.shape[0], 3), torch.zeros(1, 1, dtype=torch.long), num_beams=2,
                    max_new_tokens=2, eos_id=None, pad_id=0, early_stopping="sometimes")


def markov_step(table: torch.Tensor):
    """A step function whose next-token logits depend only on the last token."""
    return lambda seqs: table[seqs[:, -1]]


def test_generate_tokens_stops_rows_and_pads_after_the_stop_token():
    # Token i -> i + 1 deterministically; row 0 starts at 0 and reaches the stop token 3 first.
    vocab = 8
    table = torch.full((vocab, vocab), -10.0)
    table[torch.arange(vocab), (torch.arange(vocab) + 1) % vocab] = 10.0
    prompt = torch.tensor([[0], [1]])
    out = generate_tokens(markov_step(table), prompt, 6, stop_tokens=[4], pad_id=7)
    # Row 1 stops after emitting 4 (3 steps); row 0 emits 4 at step 4; the loop then ends.
    assert out.tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 7]]


def brute_force_best(table, prompt_token, max_new, eos_id, length_penalty):
    """Exhaustive search over every hypothesis that ends at eos or at max_new tokens."""
    logp = table.log_softmax(-1)
    best, best_score = None, -math.inf
    for n in range(1, max_new + 1):
        for seq in itertools.product(range(table.shape[0]), repeat=n):
            if eos_id in seq[:-1] or (n < max_new and seq[-1] != eos_id):
                continue
            prev, total = prompt_token, 0.0
            for tok in seq:
                total += float(logp[prev, tok])
                prev = tok
            score = total / n**length_penalty
            if score > best_score:
                best, best_score = list(seq), score
    return best


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0, -0.5])
def test_wide_beam_search_is_exact_search(length_penalty):
    torch.manual_seed(3)
    vocab, eos, max_new = 4, 3, 4
    table = torch.randn(vocab, vocab, dtype=torch.float64) * 1.5
    prompt = torch.tensor([[0]])
    # With num_beams >= vocab ** max_new nothing is ever pruned, and "never" never stops early.
    out = beam_search(markov_step(table), prompt, num_beams=vocab**max_new, max_new_tokens=max_new, eos_id=eos,
                      pad_id=0, length_penalty=length_penalty, early_stopping="never")
    expected = brute_force_best(table, 0, max_new, eos, length_penalty)
    got = out[0, 1:].tolist()
    if eos in got:
        got = got[: got.index(eos) + 1]
    assert got == expected


def test_beam_search_beats_greedy_on_a_garden_path():
    # From 0, greedy takes 1 (p=0.6) but every continuation of 1 is poor (0.25 each);
    # 2 (p=0.4) leads to a sure token, so "0 2 x" has probability 0.4 > 0.6 * 0.25.
    p = torch.full((4, 4), 1e-9)
    p[0, 1], p[0, 2] = 0.6, 0.4
    p[1, :] = 0.25
    p[2, 3] = 1.0
    p[3, 3] = 1.0
    table = p.log()
    prompt = torch.tensor([[0]])
    greedy = generate_tokens(markov_step(table), prompt, 2)
    beam = beam_search(markov_step(table), prompt, num_beams=2, max_new_tokens=2, eos_id=None, pad_id=0)
    assert greedy[0, 1].item() == 1
    assert beam[0].tolist() == [0, 2, 3]



@pytest.mark.parametrize("early_stopping", [False, True, "never"])
def test_beam_search_with_reorder_equals_recomputing_the_prefix(early_stopping):
    # Next-token logits depend on the whole prefix (through its sum), so a step that keeps
    # one running sum per row gives the right answer only if reorder moves the sums with the beams.
    torch.manual_seed(0)
    vocab, eos = 6, 5
    table = torch.randn(vocab, vocab, dtype=torch.float64) * 2
    table[:, eos] -= 3  # rarer eos: longer hypotheses, more re-ordering
    state = {"permuted": False}

    def recompute(seqs):
        return table[seqs.sum(-1) % vocab]

    def incremental(new_ids):
        state["sums"] = state.get("sums", 0) + new_ids.sum(-1)
        return table[state["sums"] % vocab]

    def reorder(parents):
        state["permuted"] |= not torch.equal(parents, torch.arange(len(parents)))
        state["sums"] = state["sums"][parents]

    prompt = torch.tensor([[0, 1], [2, 3], [4, 4]])
    kwargs = dict(num_beams=3, max_new_tokens=6, eos_id=eos, pad_id=0, early_stopping=early_stopping)
    expected = beam_search(recompute, prompt, **kwargs)
    assert beam_search(incremental, prompt, reorder=reorder, **kwargs).tolist() == expected.tolist()
    assert state["permuted"], "the beams should change places, or this test checks too little"
    # Without the reorder the sums stay with their rows, and the search goes wrong.
    state.pop("sums")
    assert beam_search(incremental, prompt, reorder=lambda parents: None, **kwargs).tolist() != expected.tolist()


def test_sync_every_reads_the_device_less_often_and_gives_the_same_output():
    vocab = 8
    table = torch.full((vocab, vocab), -10.0)
    table[torch.arange(vocab), (torch.arange(vocab) + 1) % vocab] = 10.0
    calls = []

    def step(seqs):
        calls.append(seqs.shape[1])
        return table[seqs[:, -1]]

    prompt = torch.tensor([[0], [1]])
    every_step = generate_tokens(step, prompt, 10, stop_tokens=[4], pad_id=7, sync_every=1)
    n_every_step, calls[:] = len(calls), []
    # Every row has finished after step 4; with sync_every=3 the host notices after step 6.
    sparse = generate_tokens(step, prompt, 10, stop_tokens=[4], pad_id=7, sync_every=3)
    assert sparse.tolist() == every_step.tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 7]]
    assert (n_every_step, len(calls)) == (4, 6), "the extra steps are run, then cut off"
    with pytest.raises(ValueError, match="sync_every must be >= 1, got 0"):
        generate_tokens(step, prompt, 3, sync_every=0)


def tiny_decoder(positions="learned", **kw):
    from course_lib.models import Decoder, DecoderConfig

    torch.manual_seed(0)
    model = Decoder(DecoderConfig(vocab_size=40, embed_dim=32, num_layers=2, num_heads=4, hidden_dim=64, max_len=48,
                                  positions=positions, **kw)).eval()
    # At its initial scale a tiny model mostly repeats its last token; larger weights make
    # every next token depend on the whole context, which is what these tests look at.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:  # tables and projections; norms keep their unit scale
                p.normal_(0.0, 0.3)
    return model


DECODERS = {
    "gpt2-like": dict(),
    "llama-like": dict(positions="rope", norm="rmsnorm", ffn="swiglu", num_kv_heads=2, tie_embeddings=False,
                       bias=False),
}


def left_padded(rows: list[list[int]], device):
    t = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), t, dtype=torch.long)
    mask = torch.zeros(len(rows), t, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, t - len(r):] = torch.tensor(r)
        mask[i, t - len(r):] = True
    return ids.to(device), mask.to(device)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("mode", [dict(), dict(use_cache=False), dict(cuda_graph=True)], ids=["cache", "recompute",
                                                                                             "cuda_graph"])
def test_left_padded_batch_continues_every_row_as_if_it_were_alone(device, name, mode):
    if name == "llama-like" and mode.get("cuda_graph"):
        pytest.skip("the fixed-shape step reads a position table; rotary positions are refused (tested below)")
    model = tiny_decoder(**DECODERS[name]).to(device)
    rows = [[5, 9, 12, 3, 30, 7], [8, 2], [17, 17, 4, 25]]
    ids, mask = left_padded(rows, device)
    out = model.generate(ids, 12, attn_mask=mask, **mode)
    assert out.shape == (3, ids.shape[1] + 12)
    for i, row in enumerate(rows):
        alone = model.generate(torch.tensor([row], device=device), 12)
        assert out[i, ids.shape[1]:].tolist() == alone[0, len(row):].tolist(), f"row {i} ({len(row)} tokens)"
    # Without the mask, the padding is read as tokens and the short rows change.
    unmasked = model.generate(ids, 12, **mode)
    assert unmasked[1:].tolist() != out[1:].tolist()


@pytest.mark.parametrize("stop", [False, True])
def test_cuda_graph_step_gives_the_tokens_of_the_usual_cache(device, stop):
    model = tiny_decoder().to(device)
    ids = torch.randint(1, 40, (4, 5), generator=torch.Generator().manual_seed(1)).to(device)
    expected = model.generate(ids, 30)
    stop_tokens = [int(expected[0, 9])] if stop else []  # a token greedy decoding really emits
    expected = model.generate(ids, 30, stop_tokens=stop_tokens)
    assert model.generate(ids, 30, cuda_graph=True, stop_tokens=stop_tokens).tolist() == expected.tolist()


def test_generate_rejects_bad_padding_and_graph_options():
    model = tiny_decoder()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match=r"pad prompts on the left"):
        model.generate(ids, 2, attn_mask=torch.tensor([[True, True, True], [True, True, False]]))
    with pytest.raises(ValueError, match=r"attn_mask must be boolean with the shape of ids \(2, 3\)"):
        model.generate(ids, 2, attn_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="cuda_graph needs use_cache=True and learned positions"):
        tiny_decoder(**DECODERS["llama-like"]).generate(ids, 2, cuda_graph=True)
    with pytest.raises(ValueError, match="need 50 positions, but the model's max_len is 48"):
        model.generate(ids, 47)
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 48\)"):
        model(ids, positions=torch.tensor([[0, 1, 2], [0, 1, 48]]))
    with pytest.raises(ValueError, match="rotary positions, which depend only on distances"):
        tiny_decoder(**DECODERS["llama-like"])(ids, positions=torch.zeros(2, 3, dtype=torch.long))


def test_left_padded_greedy_generation_matches_hugging_face():
    transformers = pytest.importorskip("transformers")
    from course_lib.models import Decoder

    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    model = Decoder.from_hf(hf)
    ids, mask = left_padded([[5, 9, 12, 3, 30, 7], [8, 2], [17, 17, 4, 25]], "cpu")
    expected = hf.generate(ids, attention_mask=mask.long(), max_new_tokens=10, do_sample=False, pad_token_id=0,
                           eos_token_id=None)
    assert model.generate(ids, 10, attn_mask=mask).tolist() == expected.tolist()


@pytest.mark.gpu
def test_decoding_steps_never_wait_for_the_gpu():
    model = tiny_decoder().to("cuda")
    ids = torch.randint(1, 40, (2, 5), device="cuda")
    model.generate(ids, 4)  # warm-up: first calls may synchronise while allocating
    torch.cuda.set_sync_debug_mode("error")  # any host<->device synchronisation raises
    try:
        model.generate(ids, 20)
    finally:
        torch.cuda.set_sync_debug_mode(0)
