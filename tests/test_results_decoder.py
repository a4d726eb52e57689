"""The decoder chapter's claims, read from the executed page (book/decoder.md): its BPE GPT
pre-trained ahead of time, decoding strategies, KV cache, control codes, chat fine-tuning from the
checkpoint and from scratch, and in-context learning, run through course_lib/recipes/decoder/.
Thresholds sit below what was measured, so a test fails when the recipe stops learning or a
sentence of the page stops being true, not on noise."""
from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib.book_build import page_values
from course_lib.data.translation import number_words
from course_lib.recipes import decoder as recipe

# The built book: one xdist worker runs these, first (see tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]


@pytest.fixture(scope="module")
def page(built_book) -> dict:
    return page_values("decoder")


def test_the_shipped_merges_load_back_exactly(tmp_path):
    # The checkpoint's ids mean something only with its merges: saving and loading keeps them all.
    tok = recipe.load_bpe()
    again = recipe.load_bpe(recipe.save_bpe(tok, tmp_path / "bpe.json"))
    assert again.merges == tok.merges and again.vocab == tok.vocab and again.special_tokens == tok.special_tokens
    assert tok.vocab_size == recipe.VOCAB_SIZE
    text = "Return the number of items.\n<user>spell 42<end>"
    assert tok.decode(tok.encode(text)) == text
    assert [tok.special_tokens[s] for s in recipe.SPECIAL_TOKENS] == list(range(tok.vocab_size - 5, tok.vocab_size))


def test_the_untrained_model_is_causal_and_guesses_uniformly(page):
    untrained = page["untrained"]
    # "changing the last token must not change any earlier prediction"
    assert untrained["earlier_change"] == 0.0, untrained
    assert untrained["last_change"] > 0, "the last position must see the token that changed"
    # "GPT-2 starts its weights small ..., so the untrained model predicts almost uniformly"
    assert untrained["loss"] == pytest.approx(untrained["uniform"], abs=0.3), untrained


def test_the_pretrained_gpt_beats_both_baselines_per_token_and_per_byte(page):
    run = page["gpt"]
    assert run["uniform_per_token"] == pytest.approx(math.log(recipe.VOCAB_SIZE))
    # "BPE tokens of about 2.5 bytes each" (measured 2.54)
    assert round(run["bytes_per_token"], 1) == 2.5, run["bytes_per_token"]
    # "ends well below both baselines, per token and per byte alike". Measured: 3.14 nats/token
    # against 4.36 (bigram) and 5.89 (unigram); per byte 1.24, 1.72, 2.32.
    for unit in ("per_token", "per_byte"):
        assert run[f"unigram_{unit}"] > run[f"bigram_{unit}"] > run[f"model_{unit}"], (unit, run)
    assert run["model_per_token"] < run["bigram_per_token"] - 0.8, run
    assert run["model_perplexity"] == pytest.approx(math.exp(run["model_per_token"]))
    # "Per byte it also beats the character-level bigram" (and the BPE bigram beats the
    # character bigram per byte: "far ahead")
    assert run["model_per_byte"] < run["bigram_per_byte"] < run["char_bigram_per_byte"] - 0.2, run
    # "The loss falls fast from the uniform guess" (the live 40 steps)
    assert run["live_train_loss"][0] == pytest.approx(run["uniform_per_token"], abs=0.3)
    live = run["live_val_loss"]
    assert all(b < a for a, b in zip(live, live[1:])), live
    assert live[-1] < run["uniform_per_token"] - 1.0, live
    # the shipped run's validation curve falls from its first evaluation to its last
    assert run["val_losses"][-1] < run["val_losses"][0], run["val_losses"]
    # "40% of our pre-training windows came from few-shot documents"
    assert page["few_shot_percent"] == 40 == round(100 * recipe.FEW_SHOT_SHARE)
    # "Our GPT (0.45 M parameters"
    assert round(run["num_parameters"] / 1e6, 2) == 0.45, run["num_parameters"]


def test_top_p_adapts_to_the_models_uncertainty(page):
    kept, top5 = page["top_p_kept"], page["top_k_mass"]
    # "after 'Return the', where many words can follow, and after 'Raise a Value', where one
    # token is all but certain": top-p keeps more candidates in the first case. Measured: 141
    # against 1; top-5 covers 0.20 against 0.98.
    assert kept["Return the"] > 10 * kept["Raise a Value"], kept
    assert top5["Raise a Value"] > 0.9 > top5["Return the"], top5


def test_decoding_strategies_read_as_the_page_says(page):
    share, text = page["known_word_share"], page["first_text"]
    strategies = ("greedy", "temperature 0.7", "temperature 1.5", "top-k 5", "top-p 0.9")
    # Training changes how the pieces join: every sampling strategy writes more real words after
    # it. (Not greedy: the untrained model's "the the ..." is all real words.)
    for name in strategies[1:]:
        assert share[f"{name}, after"] > share[f"{name}, before"] + 0.2, name
    # "The untrained model writes noise: ... under greedy decoding, a token or two over and over"
    assert len(set(text["greedy, before"].split())) <= 2, text["greedy, before"]
    # "The trained model writes docstring-like English" (measured 89-95% known words when sampling
    # at temperature 0.7, with top-k and with top-p)
    for name in ("temperature 0.7", "top-k 5", "top-p 0.9"):
        assert share[f"{name}, after"] > 0.8, (name, share)
    # "Greedy decoding soon repeats itself"
    words = text["greedy, after"].split()
    assert len(set(words)) < 0.75 * len(words), text["greedy, after"]
    # "a high temperature ... breaks the words apart; a lower temperature, top-k and top-p ...
    # cutting most of that tail" (measured 60% against 88-95%)
    for name in ("temperature 0.7", "top-k 5", "top-p 0.9"):
        assert share[f"{name}, after"] > share["temperature 1.5, after"] + 0.1, (name, share)


def test_kv_cache_gives_the_same_tokens_faster(page):
    runs = page["kv_cache"]
    lengths = sorted(runs)
    assert all(runs[n]["same"] for n in lengths), "cached and uncached generation must agree"
    # "Without the cache the cost of a step grows with the length of the text ...; with it each
    # step costs about the same." Measured: 1.9, 3.7, 7.3 ms against 0.9, 0.9, 0.9 ms per step.
    short, long = lengths[0], lengths[-1]
    per_step = {name: {n: runs[n][name] / n for n in lengths} for name in ("cached", "full")}
    assert per_step["full"][long] > 2 * per_step["full"][short], per_step
    assert per_step["cached"][long] < 2 * per_step["cached"][short], per_step
    # "the same tokens, measurably faster"
    assert runs[long]["full"] > 1.5 * runs[long]["cached"], runs[long]


def test_control_codes_steer_the_text(page):
    ctrl = page["ctrl"]
    # "each kind of text is cheaper to predict behind its own code".
    # Measured: 0.58 nats/token behind <num>, 0.70 behind <doc>; docstrings 3.42 against 3.54.
    assert ctrl["num_loss_right_code"] < ctrl["num_loss_wrong_code"] - 0.05, ctrl
    assert ctrl["doc_loss_right_code"] < ctrl["doc_loss_wrong_code"], ctrl
    # "mostly lists of numbers behind <num> and mostly docstring-like prose behind <doc>, where
    # number words are rare". Measured: 75% number words behind <num>, 2% behind <doc>.
    share = ctrl["number_share"]
    assert share["<num>"] > 0.6 and share["<doc>"] < 0.15, share


def test_chat_fine_tuning_answers_held_out_questions(page):
    chat = page["chat"]
    words = set(number_words("en", recipe.CHAT_MAX_NUMBER))
    # "Before fine-tuning ... it continues with docstring-like text until the length limit"
    # (24 new tokens, no <end>): never a number's words.
    assert all(len(answer) >= 24 and answer not in words for answer in chat["before"]), chat["before"]
    # "After the fine-tune it answers in the format, in number words": every question the page shows.
    assert all(answer in words for answer in chat["after"]), chat["after"]
    assert chat["num_eval"] == len(chat["held_out"]) == len(chat["spelled"])
    assert recipe.CHAT_STEPS == 150  # "We fine-tune our pre-trained GPT for 150 steps"
    # "it spells a majority of the held-out numbers exactly" (measured 65%)
    assert chat["exact_match"] > 0.5, chat["exact_match"]
    # "most of its misses are the words of other numbers" (measured 7 of 7)
    spellings = number_words("en", recipe.CHAT_MAX_NUMBER)
    misses = [a for a, n in zip(chat["spelled"], chat["held_out"]) if a != spellings[n]]
    assert sum(a in words for a in misses) > len(misses) / 2, misses


def test_pretraining_changes_how_the_chat_fine_tune_goes_not_where_it_ends(page):
    runs = page["chat_transfer"]
    pre, scratch = runs["pre-trained"], runs["scratch"]
    assert len(pre["exact_match"]) == len(scratch["exact_match"]) >= 3
    start = page["chat_start_loss"]
    # "its loss on the answers starts ... higher than the uniform guess" (measured 9.44 against 6.93)
    assert start > math.log(recipe.VOCAB_SIZE), start
    # "starts worse ..., then falls faster and ends lower on the training dialogues" (the last 10
    # steps' mean; measured 0.03 against 0.09)
    assert np.mean(pre["first_loss"]) > np.mean(scratch["first_loss"]) + 1, runs
    assert np.mean(pre["last_loss"]) < np.mean(scratch["last_loss"]), runs
    # "both spell about the same share exactly (within one number in twenty)": measured 63% and 65%
    assert abs(np.mean(pre["exact_match"]) - np.mean(scratch["exact_match"])) <= 0.05 + 1e-9, runs
    # "the pre-trained model ends with the higher validation loss" (measured 0.78 against 0.50)
    assert np.mean(pre["val_loss"]) > np.mean(scratch["val_loss"]), runs


def test_in_context_the_model_reads_which_labels_but_not_the_map(page):
    icl = page["icl"]
    assert icl["chance"] == pytest.approx(1 / recipe.WORDS_PER_MAP)
    familiar, held_out = icl["familiar"], icl["held_out"]
    # "With no example it can only guess among the labels of its training, and is rarely right"
    # (measured 4% with familiar labels, 0% with held-out ones)
    assert familiar["accuracy"][0] < 0.1 and held_out["accuracy"][0] == 0, icl
    # "With one example or more, nearly every answer is a label that the prompt shows" (94-100%)
    assert all(share > 0.9 for share in familiar["from_prompt"][1:]), familiar
    # "its accuracy stays near the rate of picking one of the map's four labels at random, however
    # many examples it gets (measured 19-26%), far below the dotted line" (89% at 8 shots)
    assert all(abs(acc - icl["chance"]) < 0.1 for acc in familiar["accuracy"][1:]), familiar
    assert familiar["accuracy"][-1] < familiar["seen"][-1] - 0.4, familiar
    # "with label words it never saw as labels, it does not even copy them" (at most 2%)
    assert all(share < 0.1 for share in held_out["from_prompt"]), held_out
    assert all(acc < 0.1 for acc in held_out["accuracy"]), held_out


def test_a_gpt_trained_for_the_lookup_learns_the_map_in_context(page):
    trained, mixed = page["icl_trained"], page["icl"]
    familiar, held_out = trained["familiar"], trained["held_out"]
    # "With none, the model is almost never right" (measured 3%)
    assert familiar["accuracy"][0] < 0.1, familiar
    # "The curve now climbs with the examples ... with eight, it is right most of the time, climbing
    # towards the dotted line" (measured 3, 2, 27, 52, 65%; word shown in 90% at 8 shots)
    assert familiar["accuracy"][1:] == sorted(familiar["accuracy"][1:]), familiar
    # "One example does not help yet" (measured 2%)
    assert familiar["accuracy"][1] < 0.1, familiar
    assert familiar["accuracy"][-1] > 0.5 and familiar["accuracy"][-1] > familiar["seen"][-1] - 0.35, familiar
    # the mixed pre-training, drawn beside it, stays near chance (measured 26% at 8 shots)
    assert familiar["accuracy"][-1] > mixed["familiar"]["accuracy"][-1] + 0.25, (familiar, mixed["familiar"])
    # "right for most prompts that show the word, and almost never for those that do not"
    # (measured 80% and 2% at 4 shots)
    split = trained["by_seen"]["familiar"]
    assert split["seen"] > 0.7 and split["unseen"] < 0.1, split
    # "it never writes a label word that it did not see as a label in training" (measured 0%)
    assert all(share < 0.05 for share in held_out["from_prompt"]), held_out
    assert all(acc < 0.05 for acc in held_out["accuracy"]), held_out


def test_few_shot_prompts_hold_out_the_labels():
    # A cheap rerun of the recipe's task: held-out maps only use labels never trained as labels,
    # training documents never repeat the word of the line before, every word is one token, and
    # more shots only add lines in front of the same query.
    assert not set(recipe.HELD_OUT_LABELS) & set(recipe.TRAIN_LABELS)
    tok = recipe.load_bpe()
    for word in (*recipe.INPUTS, *recipe.TRAIN_LABELS, *recipe.HELD_OUT_LABELS):
        assert len(tok.encode(" " + word)) == 1, word
    for doc in recipe.few_shot_documents(200, seed=0).split("\n\n"):
        pairs = [line.split()[1:] for line in doc.split("\n")]
        assert all(label in recipe.TRAIN_LABELS for _, label in pairs), doc
        assert all(a[0] != b[0] for a, b in zip(pairs, pairs[1:])), doc
        assert len({word for word, _ in pairs}) <= recipe.WORDS_PER_MAP
    by_shots = {k: recipe.few_shot_prompts(k, 50, seed=0) for k in recipe.SHOTS}
    for k, prompts in by_shots.items():
        for p, longest in zip(prompts, by_shots[max(recipe.SHOTS)]):
            lines = p["prompt"].split("\n")
            assert len(lines) == k + 1 and p["answer"] == longest["answer"], p
            assert p["answer"].strip() in recipe.HELD_OUT_LABELS
            assert longest["prompt"].startswith("\n".join(lines[:-1]))
            assert p["seen"] == (lines[-1] in [" ".join(line.split()[:2]) for line in lines[:-1]])



def test_the_lookup_gpt_is_small_and_loads_into_its_recipe():
    # A cheap rerun of the lookup recipe: a few steps lower the loss on the few-shot documents,
    # and the shipped checkpoint is small and loads into the recipe's model.
    model, history, _ = recipe.train_lookup_gpt(steps=6, evaluations=1)
    assert history.train_loss[-1] < history.train_loss[0] - 0.5, history.train_loss
    assert recipe.LOOKUP_CHECKPOINT.stat().st_size < 0.5e6
    shipped, saved = recipe.load_lookup_checkpoint()
    assert shipped.config == model.config == recipe.lookup_config(recipe.VOCAB_SIZE)
    assert saved["steps"] == recipe.LOOKUP_STEPS and saved["doc_share"] == recipe.LOOKUP_DOC_SHARE
