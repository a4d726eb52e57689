"""Does pre-training help? The encoder chapter's fine-tuning comparison, run ahead of time.

For each task (sentiment, NER), each initialisation of the encoder (``scratch``: BERT's random
initialisation; ``mlm`` and ``electra``: the shipped checkpoints) and each seed, ``fine_tune`` the
same ``tiny_config`` classifier with the same hyper-parameters, number of steps and few labelled
examples, and record its learning curve. all-MiniLM-L6-v2's real weights are fine-tuned once on
sentiment beside them. ``python -m course_lib.recipes.encoder finetune`` reruns it and writes
``RESULTS``, which the chapter plots.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from ...models import EncoderForSequenceClassification
from .finetuning import INITS, bag_of_words_accuracy, fine_tune, most_frequent_tag_f1, new_classifier, task_data
from .minilm import load_minilm
from .pretraining import CHECKPOINTS, load_checkpoint, mlm_corpus_split, read_checkpoint
from .tasks import TASKS, check_disjoint, wordpiece_task

RESULTS = CHECKPOINTS["mlm"].parent / "encoder_finetune.json"
NUM_TRAIN = {"sentiment": 200, "ner": 100}  # labelled training examples: few, on purpose
SETTINGS = dict(steps=300, lr=1e-3, batch_size=32, eval_every=25)  # the same for every initialisation


def minilm_sentiment(num_train: int, num_val: int = 400, steps: int = 100, seed: int = 0, lr: float = 1e-4,
                     eval_every: int = 25) -> tuple[dict, dict]:
    """Fine-tune all-MiniLM-L6-v2 (6 layers, width 384, BERT's full 30,522-piece vocabulary) on
    the same reviews; its head mean-pools, as the model was trained to. ``(curve, metrics)``."""
    encoder, tokenizer = load_minilm()
    torch.manual_seed(seed)
    model = EncoderForSequenceClassification(replace(encoder.config, num_labels=2, pooling="mean"))
    model.encoder.load_state_dict(encoder.state_dict())
    ends = dict(cls_id=tokenizer.token_to_id["[CLS]"], sep_id=tokenizer.token_to_id["[SEP]"])
    piece_ids = lambda word: tokenizer.encode(word, add_special_tokens=False)  # noqa: E731
    train_data = wordpiece_task("sentiment", "train", piece_ids, seed=seed, num_examples=num_train, **ends)
    val_data = wordpiece_task("sentiment", "val", piece_ids, seed=0, num_examples=num_val, **ends)
    _, curve, metrics = fine_tune(model, train_data, val_data, steps=steps, seed=seed, lr=lr, eval_every=eval_every)
    return curve, metrics


def transfer_experiment(seeds=(0, 1, 2, 3, 4), num_train: dict | None = None, num_val: int = 400,
                        settings: dict | None = None, minilm_steps: int = 100,
                        path: str | Path | None = RESULTS, progress: bool = True) -> dict:
    """Run the comparison and write it to ``path`` (JSON; ``None`` writes nothing).

    ``runs[task][init]`` is one entry per seed: ``seed``, ``curve`` (``step`` and the validation
    metrics), ``metrics`` (at the last step) and ``seconds``. ``baselines`` holds the context-free
    yardsticks on the same examples, ``minilm`` the real model's run, ``config`` the settings.
    """
    num_train, settings = {**NUM_TRAIN, **(num_train or {})}, {**SETTINGS, **(settings or {})}
    _, corpus, _, saved = load_checkpoint("mlm")
    # No validation sentence of the tasks may be one the checkpoints were pre-trained on.
    pretraining = mlm_corpus_split(corpus.tokenizer)["train"]
    checked = {task: check_disjoint(pretraining, task, corpus.tokenizer, num_examples=num_val) for task in TASKS}
    results = {"config": {**settings, "num_train": num_train, "num_val": num_val, "seeds": list(seeds),
                          "checkpoint_steps": {"mlm": saved["steps"], "electra": read_checkpoint("electra")["steps"]},
                          "distinct_val_sentences_checked": checked},
               "runs": {task: {init: [] for init in INITS} for task in TASKS}}
    for task in TASKS:
        for seed in seeds:
            train_data, val_data = task_data(task, corpus, num_train[task], num_val, seed)
            for init in INITS:
                start = time.perf_counter()
                model = new_classifier(task, corpus, init, seed)
                _, curve, metrics = fine_tune(model, train_data, val_data, seed=seed, **settings)
                seconds = time.perf_counter() - start
                results["runs"][task][init].append({"seed": seed, "curve": curve, "metrics": metrics,
                                                    "seconds": seconds})
                if progress:
                    print(f"{task:9} {init:7} seed {seed}: {metrics} ({seconds:.0f} s)", flush=True)
    results["baselines"] = {
        "sentiment": {"bag_of_words_accuracy": [bag_of_words_accuracy(num_train["sentiment"], num_val, s)
                                                for s in seeds]},
        "ner": {"most_frequent_tag_f1": [most_frequent_tag_f1(num_train["ner"], num_val, s) for s in seeds]}}
    start = time.perf_counter()
    curve, metrics = minilm_sentiment(num_train["sentiment"], num_val, minilm_steps, seed=seeds[0],
                                      eval_every=max(1, minilm_steps // 4))
    results["minilm"] = {"task": "sentiment", "seed": seeds[0], "steps": minilm_steps, "curve": curve,
                         "metrics": metrics, "seconds": time.perf_counter() - start}
    if progress:
        print(f"MiniLM sentiment: {metrics} ({results['minilm']['seconds']:.0f} s)", flush=True)
    if path is not None:
        Path(path).write_text(json.dumps(results, indent=1))
    return results


def load_transfer_results(path: str | Path | None = None) -> dict:
    """The shipped results of ``transfer_experiment`` (or those at ``path``)."""
    return json.loads(Path(path or RESULTS).read_text())
