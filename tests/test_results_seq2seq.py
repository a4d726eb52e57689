"""The encoder-decoder chapter's claims, read from the executed page (book/seq2seq.md): its
translator and text-to-text model (trained ahead by course_lib/recipes/seq2seq/, loaded by the
page), the pre-trained checkpoints and the fine-tuning comparison; and the recipe's helpers,
checked on small inputs."""
from __future__ import annotations

import math
import re

import pytest
import torch

from course_lib.book_build import page_values
from course_lib.models import EncoderDecoder
from course_lib.recipes import seq2seq

# The built book: one xdist worker runs these, first (see tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]


def test_recipe_helpers_on_small_inputs():
    torch.manual_seed(0)
    train, val = seq2seq.translation_data(max_number=60)
    model = EncoderDecoder(seq2seq.small_config(train.vocab, embed_dim=16, num_layers=1)).eval()
    batch = train.collate_fn([train[i] for i in range(8)])
    # BART's initialisation starts near a uniform guess over the vocabulary.
    assert seq2seq.seq2seq_loss(model, batch).item() == pytest.approx(math.log(len(train.vocab)), abs=0.2)
    # The cross-attention weights: one (b, h, t, s) per decoder layer, rows summing to 1, none on source
    # padding, and the model's output left as it was.
    src, tgt_in = batch["input_ids"], batch["decoder_input_ids"]
    weights = seq2seq.cross_attention_weights(model, src, tgt_in)
    assert len(weights) == 1 and weights[0].shape == (8, 4, tgt_in.shape[1], src.shape[1])
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(8, 4, tgt_in.shape[1]))
    assert weights[0].masked_select((src == train.vocab.pad_id)[:, None, None, :]).abs().max() == 0
    assert all(len(block.cross_attn._forward_hooks) == 0 for block in model.decoder_blocks)
    assert seq2seq.exact_match(["a", "b", "c", "d"], ["a", "b", "x", "y"]) == 0.5
    assert seq2seq.exact_match_by_group(["a", "b"], ["a", "c"], ["fr", "ko"]) == {"all": 0.5, "fr": 1.0, "ko": 0.0}
    context = "Ana lives in Lima . Bo lives in Oslo . Bo owns a red car ."
    assert seq2seq.qa_ambiguity("Where does Ana live ?", context) == 2
    assert seq2seq.qa_ambiguity("What is the job of Bo ?", "Bo works as a pilot . Ana lives in Lima .") == 1


@pytest.fixture(scope="module")
def page(built_book) -> dict:
    return page_values("seq2seq")


def test_translation_reaches_a_stated_exact_match_on_unseen_numbers(page):
    run = page["translation"]
    greedy = run["greedy"]
    # Measured (seed 0, 400 steps, one CPU thread): greedy 96.0% exact match on the 200
    # held-out pairs (French 93%, Korean 99%); beam search with 4 beams 96.0% (93%, 99%).
    assert greedy["all"] >= 0.8, greedy
    assert greedy["fr"] >= 0.7, greedy
    assert run["beam"]["all"] >= 0.8, run["beam"]
    # "Korean ... is almost solved. French, with its irregular seventies and nineties, is harder."
    assert greedy["ko"] >= 0.9 and greedy["ko"] > greedy["fr"], greedy
    # "The untrained model writes <bos> again and again"; it gets nothing right.
    assert all(p and not p.replace("<bos>", "") for p in run["predictions_before"]), run["predictions_before"][:3]
    assert seq2seq.exact_match(run["predictions_before"], run["references"]) == 0.0
    # "the first loss is close to ln 44 = 3.8, a uniform guess over the 44 symbols"
    assert run["vocab_size"] == 44
    assert run["train_losses"][0] == pytest.approx(math.log(run["vocab_size"]), abs=0.2)
    # The loss falls by more than 10x.
    assert run["val_losses"][-1] < run["val_losses"][0] / 10, run["val_losses"]
    # "A model of about 180,000 parameters"
    assert run["num_parameters"] == pytest.approx(180_000, rel=0.1), run["num_parameters"]


def test_exposure_bias_after_the_first_error(page):
    gap = page["exposure_bias"]
    # "greedy decoding writes exactly the target whenever the teacher-forced prediction is right
    # at every position" (and the other way round).
    assert gap["forced_targets"] == pytest.approx(page["translation"]["greedy"]["all"]), gap
    # "the model gets nearly every character right (teacher forcing, above)". Measured: 99.7%.
    assert gap["forced_characters"] >= 0.95, gap
    # "With the gold prefix the model gets nearly every character after the first error right. In
    # generation the same positions are mostly wrong".
    assert gap["after_error_forced"] >= 0.8, gap
    assert gap["after_error_generated"] < 0.5, gap


def most_read_word(attention: torch.Tensor, words: list[tuple[int, int]]) -> int:
    """The index of the source word that ``attention`` (rows s, after the language tag) reads most;
    ``words`` are (start, end) character spans of the source."""
    return max(range(len(words)), key=lambda w: attention[:, 1 + words[w][0] : 1 + words[w][1]].sum())


def test_cross_attention_aligns_the_source_and_target_words(page):
    # Korean numbers are written digit by digit: 345 is 삼 백 사 십 오 ("three hundred four ten
    # five"). The first syllable should look at the first source word more than at the last,
    # and the last syllable at the last word more than at the first; French likewise by words.
    for lang, seen in page["alignment"].items():
        source, target = seen["source"], seen["target"]
        attention = torch.tensor(seen["attention"])  # t s, last layer, averaged over heads
        assert seen["source_tokens"][1 : 1 + len(source)] == list(source), seen["source_tokens"]
        first_word = source.split()[0]
        last_word = source.replace("-", " ").split()[-1]
        first_columns = slice(1, 1 + len(first_word))  # after the <2ko> or <2fr> tag
        last_columns = slice(1 + len(source) - len(last_word), 1 + len(source))
        if lang == "ko":
            first_rows, last_rows = slice(0, 1), slice(len(target) - 1, len(target))
        else:
            words = target.replace("-", " ").split()
            first_rows, last_rows = slice(0, len(words[0])), slice(len(target) - len(words[-1]), len(target))
        example = (lang, source, target)
        assert attention[first_rows, first_columns].sum() > attention[first_rows, last_columns].sum(), example
        assert attention[last_rows, last_columns].sum() > attention[last_rows, first_columns].sum(), example
        # "To write sam the decoder looks most at three ... the last syllable, o, at five";
        # "from trois, which looks most at three, to cinq, which looks most at five": of all the
        # source words, the first target unit reads the first one most, the last unit the last.
        words = [(m.start(), m.end()) for m in re.finditer(r"[^ -]+", source)]
        assert most_read_word(attention[first_rows], words) == 0, example
        assert most_read_word(attention[last_rows], words) == len(words) - 1, example
        if lang == "ko":
            # "each later syllable looks most at a source character further right than the one
            # before" (one row per syllable; the <eos> row is left out).
            columns = attention[: len(target)].argmax(-1).tolist()
            assert all(a < b for a, b in zip(columns, columns[1:])), (columns, example)


def test_beam_search_buys_little_and_its_stopping_rule_matters(page):
    run = page["translation"]
    greedy, beam, early = run["greedy"]["all"], run["beam"]["all"], run["beam_stop_early"]["all"]
    seconds = run["decode_seconds"]
    # "Beam search costs several times the decoding time of greedy search. Here it buys little";
    # the summary: "slower than greedy decoding and no more accurate".
    assert seconds["beam"] > 2 * seconds["greedy"], seconds
    assert beam <= greedy, (beam, greedy)
    # "Stopping as soon as k outputs have ended ... does clearly worse than greedy decoding".
    # Measured: 88.0% against 96.0% for the default rule.
    assert early < beam and early <= greedy - 0.03, (early, beam, greedy)
    # "The stopping rule matters more than the beams": switching the rule costs more than beam
    # search gains or loses over greedy decoding. Measured: 8.5 points against 0.
    assert beam - early > abs(greedy - beam), (early, beam, greedy)
    # "most of its misses are too short"
    misses = page["early_stop_misses"]
    assert misses["shorter"] > misses["lost"] / 2, misses


def test_text_to_text_summarizes_and_finds_the_asked_kind_of_fact(page):
    run = page["text_to_text"]
    em = run["greedy"]
    # Measured (seed 0, 500 steps): summarization 100%; QA 80%, which is what a name-blind guesser
    # gets (80.25%): questions with one fact of the asked kind 100%, with two 49%.
    assert em["summarize"] >= 0.9, em
    # "In most contexts only one fact is of the kind the question asks about": the guesser scores
    # the mean of 1 / facts, and as 1 / facts is at most 1/2 wherever there are two facts or more,
    # that mean exceeds 3/4 only when more than half of the questions have a single fact.
    assert run["qa_name_blind"] > 0.75, run["qa_name_blind"]
    # "a guesser that ignores the name scores about as well as the model"
    assert em["qa"] == pytest.approx(run["qa_name_blind"], abs=0.05), em
    # "Questions with a single fact of the asked kind are solved. Where both people have such a
    # fact ... it is still near the 50% of a coin flip."
    assert em["qa_one_fact"] >= 0.9, em
    assert em["qa_two_facts"] == pytest.approx(0.5, abs=0.15), em
    assert run["val_losses"][-1] < run["val_losses"][0] / 5, run["val_losses"]


def test_pretraining_recipe_on_small_inputs():
    from course_lib.data import Vocab
    from course_lib.data.common import SPECIALS
    from course_lib.recipes.seq2seq.pretraining import MASK, MASK_SENTENCE, DenoisingCollate

    assert seq2seq.tokenize("quatre-vingt-dix, cent.") == ["quatre", "-", "vingt", "-", "dix", ",", "cent", "."]
    sentences = [["w"] * 5, ["x"] * 30, ["y"] * 20, ["z"] * 60]
    documents = seq2seq.pack(sentences, max_tokens=48)
    assert [list(map(len, d)) for d in documents] == [[5, 30], [20], [48]]  # whole sentences, a long one cut
    vocab = Vocab([f"w{i}" for i in range(40)], specials=(*SPECIALS, *seq2seq.SENTINELS, MASK, MASK_SENTENCE))
    doc = [[vocab.stoi[f"w{i}"] for i in range(j, j + 8)] for j in (0, 8, 16, 24)]  # 4 sentences, 32 words
    words = [i for s in doc for i in s]
    eos, sentinels = vocab.eos_id, [vocab.stoi[s] for s in seq2seq.SENTINELS]
    for objective in seq2seq.OBJECTIVES:
        batch = DenoisingCollate(objective, vocab, seed=0)([{"sentences": doc}, {"sentences": doc[:2]}])
        inputs, labels = batch["input_ids"][0].tolist(), [i for i in batch["labels"][0].tolist() if i >= 0]
        assert eos in inputs and labels[-1] == eos, objective
        inputs = inputs[: inputs.index(eos)]
        if objective == "t5":  # the kept words, in order, and the hidden ones after their sentinels
            assert labels[0] == sentinels[0] and labels[-2] in sentinels
            hidden = [i for i in labels[:-1] if i not in sentinels]
            assert sorted([i for i in inputs if i not in sentinels] + hidden) == sorted(words)
        elif objective == "bart":  # the whole document back
            assert labels[:-1] == words and vocab.stoi[MASK] in inputs and len(inputs) < len(words)
        else:  # one sentence of four (30%), replaced by <mask_1>, is the target
            assert inputs.count(vocab.stoi[MASK_SENTENCE]) == 1 and labels[:-1] in doc
    # The validation and dev splits do not depend on the seed, and a seed's few training pairs avoid
    # both; the dev pairs (which choose the learning rates) are training data, never validation data.
    for task in seq2seq.TASKS:
        val = seq2seq.task_pairs(task, "val", seed=0, num_examples=20 if task == "summarization" else None)
        assert val == seq2seq.task_pairs(task, "val", seed=5, num_examples=20 if task == "summarization" else None)
        dev = seq2seq.task_pairs(task, "dev", seed=0)
        assert dev == seq2seq.task_pairs(task, "dev", seed=3) and len(set(dev)) == seq2seq.NUM_DEV
        assert not set(dev) & set(seq2seq.task_pairs(task, "val", num_examples=100))
        for seed in (0, 1, 2):
            train = seq2seq.task_pairs(task, "train", seed=seed, num_examples=100)
            assert len(set(train)) == 100 and not set(train) & (set(val) | set(dev)), (task, seed)
        assert all(src.startswith(seq2seq.PREFIXES[task]) for src, _ in val + dev)
    # check_disjoint finds a validation summary hidden in the pre-training sentences.
    leaked = seq2seq.tokenize(seq2seq.task_pairs("summarization", "val", num_examples=5)[3][1])
    assert seq2seq.check_disjoint([], [["an", "unrelated", "sentence"]], "summarization", 5) == 10
    with pytest.raises(ValueError, match="validation texts are in the pre-training text"):
        seq2seq.check_disjoint([], [leaked], "summarization", 5)
    # The scores: perfect outputs score 100 (and 1 exact match); a wrong word lowers every one.
    refs = ["Ana moved the piano .", "Bo sold the car ."]
    perfect = seq2seq.score(refs, refs, "summarization")
    assert perfect == {"exact_match": 1.0, **{k: pytest.approx(100.0) for k in perfect if k != "exact_match"}}
    worse = seq2seq.score(["Ana moved the piano .", "Bo sold the bike ."], refs, "summarization")
    assert worse["exact_match"] == 0.5 and all(worse[k] < 100 for k in worse)
    assert set(seq2seq.score(refs, refs, "translation")) == {"exact_match", "bleu", "chrf"}


def test_loss_by_position_is_the_per_token_cross_entropy():
    vocab = seq2seq.checkpoint_vocab(seq2seq.read_checkpoint("t5"))
    data = seq2seq.task_data("translation", vocab, "train", seed=0, num_examples=5)
    model = seq2seq.new_model(vocab, "scratch", seed=0).eval()
    losses = seq2seq.loss_by_position(model, data, positions=2)
    with torch.no_grad():  # one example at a time: no padding can leak into the means
        per_example = [torch.nn.functional.cross_entropy(
            model(e["input_ids"][None], e["decoder_input_ids"][None])[0, :2], e["labels"][:2], reduction="none")
            for e in data.examples]
    torch.testing.assert_close(torch.tensor(losses), torch.stack(per_example).mean(0))


def test_trained_ahead_files_round_trip(tmp_path):
    # The page loads these instead of training: what is loaded is what was trained and saved.
    saved = seq2seq.save_translator(tmp_path / "t.pt", progress=False, steps=3, embed_dim=16)
    model, history, metrics = seq2seq.load_translator(tmp_path / "t.pt")
    assert len(history.train_loss) == 3 and model.config.embed_dim == 16
    assert all(torch.equal(v.half(), saved["model"][k]) for k, v in model.state_dict().items())
    assert metrics["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert len(metrics["predictions_greedy"]) == 200 and 0 <= metrics["greedy"]["all"] <= 1
    seq2seq.save_text_to_text(tmp_path / "t.json", progress=False, steps=3, embed_dim=16)
    history, metrics = seq2seq.load_text_to_text(tmp_path / "t.json")
    assert len(history.train_loss) == 3 and set(metrics["greedy"]) >= {"summarize", "qa"}


def test_pretraining_learned_the_form_of_span_corruption(page):
    demo = page["sentinel_demo"]
    sentinels = lambda text: [w for w in text.split() if w in seq2seq.SENTINELS]  # noqa: E731
    # "it writes the sentinels in the order of the target, as many as the target has, and closes
    # with the last one"
    assert sentinels(demo["written"]) == sentinels(demo["target"]), demo
    assert demo["written"].split()[-1] == sentinels(demo["target"])[-1], demo
    # "What it puts between them is mostly the, <unk> and full stops". Measured: 5 of 5 words.
    filled = [w for w in demo["written"].split() if w not in seq2seq.SENTINELS]
    assert sum(w in ("the", "<unk>", ".") for w in filled) > len(filled) / 2, demo
    runs = page["pretraining"]
    assert {name: run["steps"] for name, run in runs.items()} == {"t5": 5000, "bart": 1200, "pegasus": 1200}
    # "The span-corruption loss fell fast at first and then hardly moved over the last 800 steps".
    # Measured: 2.64 (step 833) -> 2.36 (4165) -> 2.37 (5000).
    t5 = runs["t5"]
    flat_since = max(i for i, step in enumerate(t5["val_step"]) if step <= t5["steps"] - 800)
    assert t5["val_loss"][0] - t5["val_loss"][-1] > 0.2, t5["val_loss"]
    assert abs(t5["val_loss"][-1] - t5["val_loss"][flat_since]) < 0.01, t5["val_loss"]
    # "The infilling and gap-sentence losses were still falling when their runs stopped."
    # Measured: 4.01 -> 3.95 and 4.57 -> 4.54.
    for name in ("bart", "pegasus"):
        assert runs[name]["val_loss"][-1] < runs[name]["val_loss"][-2], (name, runs[name]["val_loss"])
    # The family's shipped files stay small (each checkpoint under 1 MB).
    assert all(run["size_mb"] < 1.0 for run in runs.values()), runs


def test_the_checkpoints_start_from_opposite_habits(page):
    start = page["starting_loss"]
    uniform = math.log(start["vocab_size"])  # 8.0 nats
    for task, by_start in start["tasks"].items():
        if task == "summarization":  # "every word of a summary is in its source"
            assert by_start["in_source"] == 1.0, by_start["in_source"]
        else:  # "most French target words are not" (measured: 23%, the hyphens and "six")
            assert by_start["in_source"] < 0.5, by_start["in_source"]
        t5, bart, scratch = by_start["t5"], by_start["bart"], by_start["scratch"]
        # "it writes <X0> first here too, and its loss on the real first token is more than twice a
        # uniform guess's". Measured: 20.1 (translation) and 17.2 (summarization) nats.
        assert t5["first"] == "<X0>" and t5["loss"][0] > 2 * uniform, (task, t5)
        # "At the third token it already does better than a uniform guess". Measured: 5.5, 6.7.
        assert t5["loss"][2] < uniform, (task, t5)
        # "its [the infilling model's] first-token loss is below a uniform guess's". Measured: 6.4, 4.6.
        assert bart["loss"][0] < uniform, (task, bart)
        # "The gap-sentence checkpoint also starts below a uniform guess on the first token".
        # Measured: 7.0 and 6.8.
        assert by_start["pegasus"]["loss"][0] < uniform, (task, by_start["pegasus"])
        # "The random start sits at or above ln V everywhere" (T5's initialisation). Measured: 8.3 to 9.0.
        assert min(scratch["loss"]) > uniform - 0.1, (task, scratch)


def test_infilling_helps_and_span_corruption_and_gap_sentences_do_not(page):
    final, config, curves = page["finetune"]["final"], page["finetune"]["config"], page["finetune"]["curves"]
    assert config["seeds"] == [0, 1, 2] and config["num_train"] == {"translation": 100, "summarization": 100}
    assert config["distinct_val_texts_checked"]["translation"] == 200  # 100 numbers, English and French
    assert config["checkpoint_steps"] == {"t5": 5000, "bart": 1200, "pegasus": 1200}  # "1,200 steps each"
    # The learning rate was chosen per task and start on the dev pairs, from the grid the page names.
    for task, by_start in config["dev"].items():
        for start, scores in by_start.items():
            assert sorted(map(float, scores)) == list(seq2seq.LR_GRID), (task, start, scores)
            assert config["lr"][task][start] == float(max(scores, key=scores.get)), (task, start)
    # "The BART-style checkpoint ends above the model trained from scratch on every metric, in both
    # tasks and in every seed." Measured means: translation exact match 50.7 vs 27.3, chrF 87.7 vs
    # 79.0; summarization ROUGE-L 98.9 vs 61.0.
    for task, starts in final.items():
        for metric, scratch in starts["scratch"].items():
            bart = starts["bart"][metric]
            assert all(b > s for b, s in zip(bart, scratch)), (task, metric, bart, scratch)
    # "In summarization it is nearly perfect" (ROUGE-L 97.9 to 99.6), "and after 60 fine-tuning
    # steps its ROUGE-L is already above where training from scratch ends after 300" (95.0 to 97.5
    # against at most 63.8).
    assert min(final["summarization"]["bart"]["rougeL"]) > 95, final["summarization"]["bart"]
    at_60 = page["finetune"]["curve_steps"].index(60)
    summaries = curves["summarization"]
    assert all(b[at_60] > s[-1] for b, s in zip(summaries["bart"], summaries["scratch"])), summaries
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    # "In translation the T5-style checkpoint ends below scratch in every seed on exact match and
    # chrF, and below it on average on BLEU." Measured: exact match 16.0 vs 27.3, chrF 70.9 vs 79.0,
    # BLEU 56.5 vs 62.8 (in one seed 60.90 vs 60.91).
    translation = final["translation"]
    for metric in ("exact_match", "chrf"):
        assert all(t < s for t, s in zip(translation["t5"][metric], translation["scratch"][metric])), metric
    assert mean(translation["t5"]["bleu"]) < mean(translation["scratch"]["bleu"])
    # "In summarization the dev pairs chose the largest rate tried, 0.01, for it; one seed then ended
    # above scratch on BLEU, chrF and ROUGE, the other two below, and on average it is below scratch
    # on every metric." Measured ROUGE-L per seed: 64.8, 49.0, 50.7 against 58.3, 60.8, 63.8.
    assert config["lr"]["summarization"]["t5"] == max(seq2seq.LR_GRID)
    summary = final["summarization"]
    scored = ("bleu", "chrf", "rouge1", "rouge2", "rougeL")
    above = [all(summary["t5"][m][i] > summary["scratch"][m][i] for m in scored) for i in range(3)]
    below = [all(summary["t5"][m][i] < summary["scratch"][m][i] for m in scored) for i in range(3)]
    assert sum(above) == 1 and sum(below) == 2, (above, below)
    for metric, scratch in summary["scratch"].items():
        assert mean(summary["t5"][metric]) < mean(scratch), metric
    # "In summarization the Pegasus-style checkpoint ends below scratch on every metric in every
    # seed [...] and yet in summarization it ends behind the random start." Measured ROUGE-L per
    # seed: 38.1, 38.9, 43.5 against 58.3, 60.8, 63.8.
    for metric, scratch in summary["scratch"].items():
        pegasus = summary["pegasus"][metric]
        assert all(p < s for p, s in zip(pegasus, scratch)), (metric, pegasus, scratch)
    # "In translation it ends below scratch on average on exact match and chrF; on BLEU the two
    # averages are within a point of each other, with the seeds spread far wider than that."
    # Measured: exact match 20.3 vs 27.3, chrF 75.3 vs 79.0; BLEU 62.2 vs 62.8, seeds 54.6 to 68.8.
    for metric in ("exact_match", "chrf"):
        assert mean(translation["pegasus"][metric]) < mean(translation["scratch"][metric]), metric
    bleu = translation["pegasus"]["bleu"], translation["scratch"]["bleu"]
    gap = abs(mean(bleu[0]) - mean(bleu[1]))
    assert gap < 1 and gap < max(max(b) - min(b) for b in bleu), bleu
    # The summary: "did worse than training from scratch on average, and so did the gap-sentence
    # checkpoint" (every metric of both tasks, BLEU in translation by 0.5).
    for task, starts in final.items():
        for metric, scratch in starts["scratch"].items():
            assert mean(starts["pegasus"][metric]) < mean(scratch), (task, metric)
