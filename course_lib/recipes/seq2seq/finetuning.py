"""Fine-tuning the small T5-style model on few labelled pairs, from scratch or from a checkpoint.

Shape legend
    b  batch        s  source tokens        t  target tokens

* ``task_data``   a task's pairs over a checkpoint's word vocabulary (``tasks.task_pairs``);
* ``new_model``   a ``t5_config`` model with T5's initialisation (``init="scratch"``) or the weights of
                  a shipped checkpoint (``"t5"``, ``"bart"``, ``"pegasus"``);
* ``score``       greedy outputs against the references: exact match, sacrebleu's BLEU and chrF,
                  and for summaries rouge-score's ROUGE-1, ROUGE-2 and ROUGE-L (F1, in %);
* ``fine_tune``   trains every weight with AdamW (warm-up, then cosine) and scores the validation
                  set every ``eval_every`` steps: a learning curve;
* ``loss_by_position``  a start's teacher-forced loss on a task's targets, before any fine-tuning,
                  position by position: what its decoder expects to write first.
"""
from __future__ import annotations

import torch
from torch import nn

from ...data import ExampleDataset, Vocab
from ...constants import IGNORE_INDEX
from ...data.common import seq2seq_example
from ...models import EncoderDecoder
from ...train import fine_tune_steps
from .from_scratch import exact_match, generate_text, seq2seq_loss
from .pretraining import OBJECTIVES, load_pretrained, t5_config
from .tasks import task_pairs, tokenize

INITS = ("scratch", *OBJECTIVES)


def task_data(task: str, vocab: Vocab, split: str, seed: int = 0, num_examples: int | None = None) -> ExampleDataset:
    """``task``'s pairs as ``source <eos>`` -> ``target <eos>`` word ids; ``raw[i]`` is
    ``(source_text, target_text)`` with the words spaced, as the model writes them."""
    pairs = [(" ".join(tokenize(src)), " ".join(tokenize(tgt)))
             for src, tgt in task_pairs(task, split, seed, num_examples)]
    examples = [seq2seq_example(vocab.encode(src.split()), vocab.encode(tgt.split()), vocab) for src, tgt in pairs]
    return ExampleDataset(examples, vocab, pairs)


def new_model(vocab: Vocab, init: str = "scratch", seed: int = 0, dropout: float = 0.1) -> EncoderDecoder:
    """The same ``t5_config`` model, randomly initialised (T5's scheme, seeded) or pre-trained."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    torch.manual_seed(seed)
    if init == "scratch":
        return EncoderDecoder(t5_config(vocab, dropout=dropout))
    model, saved_vocab, _ = load_pretrained(init, dropout=dropout)
    if saved_vocab.itos != vocab.itos:
        raise ValueError(f"the {init} checkpoint has another vocabulary than the data")
    return model


def score(predictions: list[str], references: list[str], task: str) -> dict[str, float]:
    """``exact_match`` (a fraction), ``bleu`` and ``chrf`` (sacrebleu, corpus level, 0-100), and for
    summarization ``rouge1``, ``rouge2``, ``rougeL`` (rouge-score's F1, averaged, 0-100)."""
    import sacrebleu

    scores = {"exact_match": exact_match(predictions, references),
              "bleu": sacrebleu.corpus_bleu(predictions, [references], force=True).score,  # both sides are tokenised alike
              "chrf": sacrebleu.corpus_chrf(predictions, [references]).score}
    if task == "summarization":
        from rouge_score import rouge_scorer

        kinds = ("rouge1", "rouge2", "rougeL")
        scorer = rouge_scorer.RougeScorer(list(kinds))
        rows = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
        scores.update({k: 100 * sum(r[k].fmeasure for r in rows) / len(rows) for k in kinds})
    return scores


@torch.no_grad()
def loss_by_position(model: EncoderDecoder, data: ExampleDataset, positions: int = 4) -> list[float]:
    """Mean cross-entropy (nats) of the target's first ``positions`` tokens, one number per
    position, teacher-forced, on every example of ``data`` (targets shorter than a position are
    left out of its mean)."""
    batch = data.collate_fn(data.examples)
    model.eval()
    labels = batch["labels"][:, :positions]  # b t
    logits = model(batch["input_ids"], model.shift_right(batch["labels"]))[:, :positions]  # b t v
    nll = nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    real = labels != IGNORE_INDEX
    return [nll[:, j][real[:, j]].mean().item() for j in range(labels.shape[1])]


def fine_tune(model: EncoderDecoder, train_data: ExampleDataset, val_data: ExampleDataset, task: str,
              steps: int = 300, seed: int = 0, lr: float = 3e-3, batch_size: int = 16,
              eval_every: int = 60, eval_first: bool = True) -> tuple[EncoderDecoder, dict[str, list], list[str]]:
    """Train every weight on ``train_data``; score greedy outputs on ``val_data`` before training
    (unless ``eval_first`` is false) and every ``eval_every`` steps. Returns
    ``(model, curve, predictions)``: ``curve`` holds
    ``step`` and each metric of ``score``; ``predictions`` are the last greedy outputs."""
    references = [target for _, target in val_data.raw]
    max_new = max(len(e["labels"]) for e in val_data.examples) + 4
    curve: dict[str, list] = {"step": []}
    predictions: list[str] = []

    def evaluate_at(step: int) -> None:
        nonlocal predictions
        predictions = generate_text(model, val_data, max_new_tokens=max_new, sep=" ")
        curve["step"].append(step)
        for name, value in score(predictions, references, task).items():
            curve.setdefault(name, []).append(value)

    if eval_first:
        evaluate_at(0)
    fine_tune_steps(model, train_data, seq2seq_loss, steps, lr, seed, batch_size, evaluate_at, eval_every)
    return model.eval(), curve, predictions
