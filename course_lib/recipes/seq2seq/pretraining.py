"""Encoder-decoder pre-training on real text: T5's span corruption, BART's text infilling and
Pegasus's gap sentences, each training the same small T5-style model for the same steps.

Shape legend
    b  batch        s  source tokens        t  target tokens        v  vocabulary

* ``pretraining_corpus``  the standard-library docstrings (their training split) and the unlabelled
                          task text of ``tasks.task_texts``, as documents of at most ``DOC_TOKENS``
                          words made of whole sentences, over one word vocabulary: the
                          ``VOCAB_WORDS`` most frequent words of that text plus every task word;
* ``OBJECTIVES``          name -> ``(sentences, corpus, generator) -> (inputs, targets)``, built on
                          ``course_lib.models.noising``; a fresh corruption at every batch;
* ``t5_config``           T5's choices (pre-norm RMSNorm, relative position bias, no biases, no
                          ``1/sqrt(d)``, T5's initialisation) at width 64 and 2 + 2 layers;
* ``pretrain``, ``save_checkpoint``, ``read_checkpoint``, ``load_pretrained``: the models
  trained ahead of time (``python -m course_lib.recipes.seq2seq pretrain t5|bart|pegasus``).
"""
from __future__ import annotations

import platform
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ...data import ExampleDataset, PadCollate, Vocab, stdlib_docstrings
from ...data.common import SPECIALS, in_validation
from ...data.text import VAL_FRACTION
from ...models import EncoderDecoder, EncoderDecoderConfig
from ...models.noising import bart_text_infilling, pegasus_gap_sentences, t5_span_corruption
from ...train import History, TrainConfig, train
from .from_scratch import seq2seq_loss
from .tasks import task_texts, task_words, tokenize

SENTINELS = tuple(f"<X{i}>" for i in range(12))  # T5's <extra_id_0>, <extra_id_1>, ...
MASK, MASK_SENTENCE = "<mask>", "<mask_1>"  # BART's span mask, Pegasus's sentence mask
VOCAB_WORDS = 3000
DOC_TOKENS = 48
MIN_DOC_TOKENS = 4  # span corruption needs a few words to hide some and keep some
VAL_DOCUMENTS = 256  # held-out docstring documents scored during pre-training


@dataclass
class Seq2SeqCorpus:
    """Pre-training documents (lists of sentences, each a list of words) and their vocabulary."""

    vocab: Vocab
    train_documents: list[list[list[str]]]
    val_documents: list[list[list[str]]]  # held-out docstrings only

    def ids(self, words: list[str]) -> list[int]:
        return self.vocab.encode(words)


def docstring_sentences(doc: str) -> list[list[str]]:
    """A docstring's sentences as words: whitespace collapsed, cut after ``.``, ``!`` or ``?``."""
    return [tokenize(s) for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())) if tokenize(s)]


def pack(sentences: list[list[str]], max_tokens: int = DOC_TOKENS) -> list[list[list[str]]]:
    """Consecutive sentences grouped into documents of at most ``max_tokens`` words (a longer
    sentence is cut to fit and makes a document of its own)."""
    documents, current = [], []
    for sentence in sentences:
        sentence = sentence[:max_tokens]
        if current and sum(map(len, current)) + len(sentence) > max_tokens:
            documents.append(current)
            current = []
        current.append(sentence)
    documents += [current] if current else []
    return [doc for doc in documents if sum(map(len, doc)) >= MIN_DOC_TOKENS]


def pretraining_corpus(vocab_words: int = VOCAB_WORDS) -> Seq2SeqCorpus:
    """Docstrings (the corpus's own train/val split, by a hash of each docstring) and the unlabelled
    task text (training documents only): numbers eight to a document, separated by commas, and
    long sentences three to a document. The vocabulary is counted on the training documents."""
    split = {"train": [], "val": []}
    for doc in stdlib_docstrings():
        split["val" if in_validation(doc, VAL_FRACTION) else "train"] += pack(docstring_sentences(doc))
    texts = task_texts()
    for lang in ("en", "fr"):
        numbers = [tokenize(text) + [","] for text in texts[lang]]
        split["train"] += [numbers[i : i + 8] for i in range(0, len(numbers), 8)]
    longs = [tokenize(text) for text in texts["summarization"]]
    split["train"] += [longs[i : i + 3] for i in range(0, len(longs), 3)]
    counts = Counter(w for document in split["train"] for sentence in document for w in sentence)
    kept = [w for w, _ in counts.most_common(vocab_words)]
    vocab = Vocab(kept + sorted(task_words() - set(kept)), specials=(*SPECIALS, *SENTINELS, MASK, MASK_SENTENCE))
    return Seq2SeqCorpus(vocab, split["train"], split["val"])


# ---------------------------------------------------------------------------------- objectives
def span_corruption(sentences: list[list[int]], vocab: Vocab, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """T5: 15% of the words, in spans of mean length 3, each replaced by one sentinel."""
    ids = torch.tensor([i for s in sentences for i in s])
    return t5_span_corruption(ids, [vocab.stoi[s] for s in SENTINELS], generator=generator)


def text_infilling(sentences: list[list[int]], vocab: Vocab, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """BART: Poisson(3) spans covering 30% of the words, each replaced by one ``<mask>``; the
    target is the whole document."""
    ids = torch.tensor([i for s in sentences for i in s])
    return bart_text_infilling(ids, vocab.stoi[MASK], generator=generator), ids


def gap_sentences(sentences: list[list[int]], vocab: Vocab, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Pegasus: the 30% most "principal" sentences (at least one) become ``<mask_1>`` each; the
    target is those sentences."""
    inputs, targets, _ = pegasus_gap_sentences(sentences, vocab.stoi[MASK_SENTENCE])
    return torch.tensor(inputs), torch.tensor(targets)


OBJECTIVES = {"t5": span_corruption, "bart": text_infilling, "pegasus": gap_sentences}


class DenoisingCollate:
    """Corrupt each document afresh (the objective), append ``<eos>`` to both sides and pad."""

    def __init__(self, objective: str, vocab: Vocab, seed: int = 0):
        self.noise, self.vocab = OBJECTIVES[objective], vocab
        self.generator = torch.Generator().manual_seed(seed)
        self.pad = PadCollate(vocab.pad_id)

    def __call__(self, examples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        eos = torch.tensor([self.vocab.eos_id])
        pairs = [self.noise(e["sentences"], self.vocab, self.generator) for e in examples]
        return self.pad([{"input_ids": torch.cat([x, eos]), "labels": torch.cat([y, eos])} for x, y in pairs])


def denoising_data(corpus: Seq2SeqCorpus, objective: str, seed: int = 0) -> tuple[ExampleDataset, ExampleDataset]:
    """Training documents corrupted at every batch; the first ``VAL_DOCUMENTS`` held-out docstring
    documents corrupted once (seeded)."""
    def encode(documents):
        return [{"sentences": [corpus.ids(s) for s in doc]} for doc in documents]

    train_data = ExampleDataset(encode(corpus.train_documents), corpus.vocab, pad_id=corpus.vocab.pad_id)
    train_data.collate_fn = DenoisingCollate(objective, corpus.vocab, seed)
    fixed = DenoisingCollate(objective, corpus.vocab, seed + 1)
    val_examples = [fixed([e]) for e in encode(corpus.val_documents[:VAL_DOCUMENTS])]
    val_data = ExampleDataset([{k: v[0] for k, v in b.items()} for b in val_examples], corpus.vocab,
                              pad_id=corpus.vocab.pad_id)
    return train_data, val_data


def t5_config(vocab: Vocab, embed_dim: int = 64, num_layers: int = 2, num_heads: int = 4,
              dropout: float = 0.0, **overrides) -> EncoderDecoderConfig:
    """A small T5 (v1.0): pre-norm RMSNorm, relative position bias, ReLU feed-forward of width
    2e (T5's is 4e; this keeps each checkpoint under 1 MB), no biases, no ``1/sqrt(d)`` (T5's
    initialisation absorbs it), a tied head scaled by ``e**-0.5``. The decoder starts from ``<bos>``."""
    config = EncoderDecoderConfig(
        vocab_size=len(vocab), embed_dim=embed_dim, num_encoder_layers=num_layers, num_decoder_layers=num_layers,
        num_heads=num_heads, hidden_dim=2 * embed_dim, max_len=128, dropout=dropout, activation="relu",
        pad_id=vocab.pad_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id, decoder_start_id=vocab.bos_id,
        init_scheme="t5", norm_first=True, norm="rmsnorm", positions="relative", embed_norm=False,
        final_norm=True, attn_scale=1.0, bias=False, scale_head=True)
    return replace(config, **overrides)


def pretrain(objective: str = "t5", steps: int = 200, seed: int = 0, corpus: Seq2SeqCorpus | None = None,
             batch_size: int = 32, lr: float = 3e-3, progress: bool = False) -> tuple[EncoderDecoder, History, dict]:
    """Pre-train a fresh ``t5_config`` model with one objective. ``metrics``: ``val_loss`` (nats
    per target word on the held-out docstrings, corrupted once) and ``train_seconds``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    corpus = corpus or pretraining_corpus()
    torch.manual_seed(seed)
    model = EncoderDecoder(t5_config(corpus.vocab))
    train_data, val_data = denoising_data(corpus, objective, seed)
    start = time.perf_counter()
    history = train(model, train_data, val_data, TrainConfig(
        max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.01,
        eval_every=max(1, steps // 6), eval_batches=None, eval_batch_size=256, seed=seed, progress=progress),
        loss_fn=seq2seq_loss)
    metrics = {"val_loss": history.val_loss[-1], "train_seconds": time.perf_counter() - start}
    return model.eval(), history, metrics


_CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
CHECKPOINTS = {name: _CHECKPOINT_DIR / f"seq2seq_{name}.pt" for name in OBJECTIVES}
# T5's held-out loss was still falling at 1,200 steps; BART's objective costs about four times as
# much per step (its target is the whole document), so it got the shorter run.
CHECKPOINT_STEPS = {"t5": 5_000, "bart": 1_200, "pegasus": 1_200}


def save_checkpoint(objective: str = "t5", path: str | Path | None = None, steps: int | None = None,
                    seed: int = 0, progress: bool = True) -> dict:
    """``pretrain`` and save the float16 weights, the vocabulary, the history and the metrics.
    The vocabulary travels with the weights: another Python's docstrings count other words."""
    corpus = pretraining_corpus()
    steps = steps or CHECKPOINT_STEPS[objective]
    model, history, metrics = pretrain(objective, steps, seed, corpus, progress=progress)
    state = {"model": {k: v.half() for k, v in model.state_dict().items()}, "words": corpus.vocab.itos,
             "history": asdict(history), "objective": objective, "metrics": metrics, "steps": steps,
             "seed": seed, "python": platform.python_version()}
    path = Path(path or CHECKPOINTS[objective])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def read_checkpoint(objective: str = "t5", path: str | Path | None = None) -> dict:
    """What ``save_checkpoint`` saved, as it is."""
    saved = torch.load(path or CHECKPOINTS[objective], map_location="cpu", weights_only=True)
    if saved["objective"] != objective:
        raise ValueError(f"{path} holds a {saved['objective']!r} checkpoint, not {objective!r}")
    return saved


def checkpoint_vocab(saved: dict) -> Vocab:
    words = list(saved["words"])
    return Vocab(words[len(SPECIALS) + len(SENTINELS) + 2 :], specials=words[: len(SPECIALS) + len(SENTINELS) + 2])


def load_pretrained(objective: str = "t5", dropout: float = 0.0) -> tuple[EncoderDecoder, Vocab, dict]:
    """``(model in float32, vocab, saved)`` from a shipped checkpoint."""
    saved = read_checkpoint(objective)
    vocab = checkpoint_vocab(saved)
    model = EncoderDecoder(t5_config(vocab, dropout=dropout))
    model.load_state_dict({k: v.float() for k, v in saved["model"].items()})
    return model.eval(), vocab, saved


@torch.no_grad()
def fill_sentinels(model: EncoderDecoder, vocab: Vocab, text: str, seed: int = 0,
                   max_new_tokens: int = 24) -> tuple[str, str, str]:
    """Span-corrupt ``text``'s words (seeded) and let ``model`` write the missing spans greedily.

    Returns ``(input, target, output)`` as spaced words, sentinels shown.
    """
    sentences = [vocab.encode(s) for s in docstring_sentences(text)]
    inputs, targets = span_corruption(sentences, vocab, torch.Generator().manual_seed(seed))
    src = torch.cat([inputs, torch.tensor([vocab.eos_id])])[None]  # 1 s
    out = model.eval().generate(src, max_new_tokens)[0, 1:].tolist()  # without the decoder's <bos>
    out = out[: out.index(vocab.eos_id)] if vocab.eos_id in out else out
    words = lambda ids: " ".join(vocab.itos[i] for i in ids)  # noqa: E731
    return words(inputs.tolist()), words(targets.tolist()), words(out)


def held_out_document() -> str:
    """A docstring from the corpus's validation split (never pre-trained on), on one line: the
    root logger's if this Python has it, else the first of 150 to 300 plain characters."""
    docs = [" ".join(doc.split()) for doc in stdlib_docstrings() if in_validation(doc, VAL_FRACTION)]
    plain = [d for d in docs if 150 < len(d) < 300 and not set(d) & set("<>{}[]`=|*_:()")]
    return next((d for d in plain if d.startswith("A root logger")), plain[0])
