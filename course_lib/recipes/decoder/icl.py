"""In-context learning, GPT-3's point, at the chapter's scale: a map read from the prompt.

Every few-shot document uses ONE map of its own, from four input words to label words, drawn
at random for that document, and shows it as a bulleted list of pairs (inputs repeat):

    - print value
    - open module
    - print value
    - read error

Which label goes with which word is written nowhere but in the document's own lines, so the
only way to predict a label is to find an earlier line with the same input. The pre-training
text mixes such documents with the docstrings (``pretraining.py``); the model is never told the
task. It is scored on maps whose label words were never labels in training
(``HELD_OUT_LABELS``), so it must take them from the prompt, not recall them. Every input and
label is one BPE token (with its leading space), so a label is one next-token prediction.
"""
from __future__ import annotations

import numpy as np
import torch

from ...models import Decoder
from ...tokenizers import ByteBPETokenizer

INPUTS = ("read", "open", "call", "pass", "print", "import", "test", "follow", "allow", "support", "contain",
          "exist", "request", "return", "process", "format")
TRAIN_LABELS = ("file", "object", "string", "method", "class", "list", "function", "value", "name", "option",
                "module", "default", "number", "data", "command", "line", "path", "type", "time", "bytes",
                "message", "text", "exception", "result", "error", "event", "server", "tuple", "code", "item",
                "element", "directory")
HELD_OUT_LABELS = ("widget", "header", "thread", "stream", "address", "dictionary", "version", "output",
                   "variable", "attribute", "instance", "encoding")
WORDS_PER_MAP = 4
SHOTS = (0, 1, 2, 4, 8)


def random_map(rng: np.random.Generator, labels=TRAIN_LABELS) -> dict[str, str]:
    """One document's map: ``WORDS_PER_MAP`` distinct inputs, each with its own label."""
    inputs = rng.choice(INPUTS, size=WORDS_PER_MAP, replace=False).tolist()
    return dict(zip(inputs, rng.choice(labels, size=WORDS_PER_MAP, replace=False).tolist()))


def pair_line(word: str, label: str) -> str:
    """``"- word label"``: the label right after its word, so that finding an earlier copy of the
    word and reading the token after it (what an induction head does) is all it takes."""
    return f"- {word} {label}"


def few_shot_documents(num_docs: int, seed: int = 0, min_lines: int = 4, max_lines: int = 16) -> str:
    """``num_docs`` documents of ``min_lines``..``max_lines`` lines, each with its own map over
    ``TRAIN_LABELS``, separated by blank lines like the docstrings."""
    rng = np.random.default_rng([seed, 14])
    docs = []
    for _ in range(num_docs):
        mapping = random_map(rng)
        words, num_lines = [str(rng.choice(list(mapping)))], int(rng.integers(min_lines, max_lines + 1))
        while len(words) < num_lines:
            # Never the word of the line just before: "repeat the last label" must not pay, so that
            # only looking the word up further back does.
            words.append(str(rng.choice([w for w in mapping if w != words[-1]])))
        docs.append("\n".join(pair_line(w, mapping[w]) for w in words))
    return "\n\n".join(docs)


def few_shot_prompts(shots: int, num_prompts: int = 400, seed: int = 0, labels=HELD_OUT_LABELS) -> list[dict]:
    """New maps over ``labels``: ``shots`` example lines, then a query line.

    Each prompt is ``{"prompt": "...\\n- word", "answer": " label", "seen": bool, "shown": [labels]}``;
    ``seen`` says whether the query's word is among the examples (without it, even a perfect
    reader of the prompt can only guess), ``shown`` lists the labels the examples use. The same
    ``seed`` gives the same maps and queries for every ``shots``, and more shots only add lines,
    so the points of a curve ask the same questions.
    """
    rng = np.random.default_rng([seed, 15])
    prompts = []
    for _ in range(num_prompts):
        mapping = random_map(rng, labels)
        query = str(rng.choice(list(mapping)))
        examples = rng.choice(list(mapping), size=max(SHOTS))[:shots].tolist()
        text = "".join(pair_line(w, mapping[w]) + "\n" for w in examples) + f"- {query}"
        prompts.append({"prompt": text, "answer": f" {mapping[query]}", "seen": query in examples,
                        "shown": sorted({mapping[w] for w in examples})})
    return prompts


@torch.no_grad()
def few_shot_answers(model: Decoder, tokenizer: ByteBPETokenizer, prompts: list[dict],
                     batch_size: int = 100) -> list[str]:
    """The answer greedy decoding writes after each prompt, as long as the expected one in tokens.

    Greedy decoding writes the expected answer iff every answer token is the argmax after the
    prompt and the answer tokens before it, so one teacher-forced forward pass serves a whole
    batch: rows are padded on the right, which the causal mask keeps from touching the positions
    that count.
    """
    model.eval()
    answers = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        rows = [(tokenizer.encode(p["prompt"]), tokenizer.encode(p["answer"])) for p in batch]
        length = max(len(q) + len(a) for q, a in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)  # b t
        for i, (q, a) in enumerate(rows):
            ids[i, : len(q) + len(a)] = torch.tensor(q + a)
        guesses = model(ids).argmax(-1)  # b t: the greedy next token after each position
        answers += [tokenizer.decode(guesses[i, len(q) - 1 : len(q) + len(a) - 1].tolist())
                    for i, (q, a) in enumerate(rows)]
    return answers


def few_shot_accuracy(model: Decoder, tokenizer: ByteBPETokenizer, prompts: list[dict]) -> float:
    """Share of prompts whose answer greedy decoding writes exactly."""
    answers = few_shot_answers(model, tokenizer, prompts)
    return float(np.mean([a == p["answer"] for a, p in zip(answers, prompts)]))


def shots_curve(model: Decoder, tokenizer: ByteBPETokenizer, num_prompts: int = 400, seed: int = 0) -> dict:
    """For each number of shots in ``SHOTS``, on new maps over the held-out labels and over the
    training labels (``familiar``): ``accuracy``, ``from_prompt`` (the share of answers that are
    a label the examples show) and ``seen`` (the share of prompts that show the query's word: the
    best a reader of the prompt can do without guessing). ``chance``: a guess among the map's labels."""
    curve = {"shots": list(SHOTS), "chance": 1 / WORDS_PER_MAP, "num_prompts": num_prompts}
    for name, labels in (("held_out", HELD_OUT_LABELS), ("familiar", TRAIN_LABELS)):
        curve[name] = {"accuracy": [], "from_prompt": [], "seen": []}
        for shots in SHOTS:
            prompts = few_shot_prompts(shots, num_prompts, seed, labels)
            answers = few_shot_answers(model, tokenizer, prompts)
            pairs = list(zip(answers, prompts))
            curve[name]["accuracy"].append(float(np.mean([a == p["answer"] for a, p in pairs])))
            curve[name]["from_prompt"].append(float(np.mean([a.strip() in p["shown"] for a, p in pairs])))
            curve[name]["seen"].append(float(np.mean([p["seen"] for p in prompts])))
    return curve
