"""Encoder pre-training (the encoder chapter): masked-LM (BERT/RoBERTa) and ELECTRA on real text.

Shape legend
    b  batch        t  tokens        v  vocab_size        e  embed_dim

* ``train_mlm``       masked-LM pre-training on the standard-library docstrings and unlabelled task
                      sentences, RoBERTa style: a fresh BERT mask for every batch (dynamic
                      masking), one segment, no NSP;
* ``train_electra``   ELECTRA's replaced-token detection on the same text;
* ``save_checkpoint`` / ``load_checkpoint``: the same two recipes run for ``CHECKPOINT_STEPS``
                      steps ahead of time (the chapter scores and fine-tunes the shipped checkpoints).

Each ``train_*`` function trains one small model from scratch with ``course_lib.train.train``
and returns ``(model, history, metrics)``.

The pre-training text is the first paragraph of every docstring, plus reviews and NER sentences
without their labels (domain-adaptive pre-training: the fine-tuning tasks' words get pieces of
their own), WordPiece-tokenised with BERT's uncased vocabulary. A tiny model cannot afford a
30,522-way softmax, so only the ``vocab_size`` most frequent pieces of the training text are
kept (about 97% of its tokens for 2,000) and the rest become ``[UNK]``. Models start from BERT's
initialisation (their ``init_weights``).
"""
from __future__ import annotations

import math
import platform
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...constants import IGNORE_INDEX
from ...data import ExampleDataset, PadCollate, stdlib_docstrings, unigram_cross_entropy
from ...data.common import in_validation
from ...data.text import VAL_FRACTION
from ...models import EncoderConfig, EncoderForMaskedLM, EncoderForTokenClassification
from ...models.objectives import DynamicMasking, Electra, bert_masking
from ...tokenizers import WordPieceTokenizer
from ...train import History, TrainConfig, evaluate, train
from .tasks import task_texts

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # compact ids 0..4; [PAD] = 0 = pad_id


def tiny_config(vocab_size: int, **overrides) -> EncoderConfig:
    """A BERT small enough to train on two CPU cores in seconds: 2 layers, width 64."""
    base = EncoderConfig(vocab_size=vocab_size, embed_dim=64, num_layers=2, num_heads=4, hidden_dim=256,
                         max_len=128, dropout=0.1, classifier_dropout=0.1, pad_id=0)
    return replace(base, **overrides)


# ---------------------------------------------------------------------------------- pre-training text
@dataclass
class MLMCorpus:
    """Docstring summaries as ``[CLS] pieces [SEP]`` over a compact WordPiece vocabulary."""

    tokenizer: WordPieceTokenizer
    pieces: list[str]  # compact id -> WordPiece token
    train_sentences: list[Tensor]  # each (t,) long
    val_sentences: list[Tensor]

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def id(self, token: str) -> int:
        return self._index()[token]

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Never masked: padding and the sentence markers."""
        return tuple(self.id(t) for t in ("[PAD]", "[CLS]", "[SEP]"))

    def encode(self, text: str, max_len: int = 64) -> Tensor:
        """Text -> ``[CLS] ids [SEP]`` (t,); pieces outside the kept vocabulary become [UNK]."""
        return self._wrap(self.tokenizer.tokenize(text), max_len)

    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        return " ".join(self.pieces[i] for i in ids).replace(" ##", "")

    def _wrap(self, pieces: list[str], max_len: int) -> Tensor:
        index, unk = self._index(), self.id("[UNK]")
        body = [index.get(p, unk) for p in pieces[: max_len - 2]]
        return torch.tensor([self.id("[CLS]"), *body, self.id("[SEP]")])

    def _index(self) -> dict[str, int]:
        if getattr(self, "_index_cache", None) is None:
            self._index_cache = {p: i for i, p in enumerate(self.pieces)}
        return self._index_cache


def summary(docstring: str) -> str:
    """A docstring's first paragraph on one line, e.g. "Return the number of items in the list."."""
    return " ".join(docstring.strip().split("\n\n")[0].split())


def mlm_corpus_split(tokenizer: WordPieceTokenizer, min_pieces: int = 4) -> dict[str, list[list[str]]]:
    """WordPiece pieces of every docstring summary, in the docstrings' own train/val split, and of
    the unlabelled task sentences (``task_texts``), which all go to training."""
    split = {"train": [], "val": []}
    for doc in stdlib_docstrings():
        pieces = tokenizer.tokenize(summary(doc))
        if len(pieces) >= min_pieces:
            split["val" if in_validation(doc, VAL_FRACTION) else "train"].append(pieces)
    split["train"] += [tokenizer.tokenize(text) for text in task_texts()]
    return split


def mlm_corpus(vocab_size: int = 2000, max_len: int = 48) -> MLMCorpus:
    """The first paragraph of every standard-library docstring and 6,000 task sentences (half
    reviews, half NER sentences, no labels), WordPiece-tokenised.

    About 11,600 training and 600 validation sentences; the validation sentences are docstrings
    (their own split, so none is seen in training). The vocabulary is counted on the training
    sentences only, so the task words get pieces of their own.
    """
    tokenizer = WordPieceTokenizer.from_minilm()
    split = mlm_corpus_split(tokenizer)
    counts = Counter(p for pieces in split["train"] for p in pieces)
    top = [p for p, _ in counts.most_common() if p not in SPECIALS][: vocab_size - len(SPECIALS)]
    corpus = MLMCorpus(tokenizer, [*SPECIALS, *top], [], [])
    corpus.train_sentences = [corpus._wrap(p, max_len) for p in split["train"]]
    corpus.val_sentences = [corpus._wrap(p, max_len) for p in split["val"]]
    return corpus


class MaskingCollate:
    """Pad sentences and corrupt them with a fresh BERT mask: RoBERTa's dynamic masking."""

    def __init__(self, masking: DynamicMasking, pad_id: int = 0):
        self.masking, self.pad = masking, PadCollate(pad_id)

    def __call__(self, examples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        inputs, labels = self.masking(self.pad(examples)["input_ids"])
        return {"input_ids": inputs, "labels": labels}


def mlm_datasets(corpus: MLMCorpus, seed: int = 0) -> tuple[ExampleDataset, ExampleDataset]:
    """Training sentences masked afresh at every batch; validation sentences masked once (seeded),
    so that successive evaluations score the same positions."""
    kwargs = dict(mask_id=corpus.id("[MASK]"), vocab_size=corpus.vocab_size, special_ids=corpus.special_ids)
    train_data = ExampleDataset([{"input_ids": s} for s in corpus.train_sentences], None, pad_id=0)
    train_data.collate_fn = MaskingCollate(DynamicMasking(seed=seed, **kwargs))
    padded = PadCollate(0)([{"input_ids": s} for s in corpus.val_sentences])["input_ids"]  # n t
    inputs, labels = bert_masking(padded, generator=torch.Generator().manual_seed(seed + 1), **kwargs)
    val_data = ExampleDataset([{"input_ids": i, "labels": y} for i, y in zip(inputs, labels)], None, pad_id=0)
    return train_data, val_data


def mlm_loss(model: EncoderForMaskedLM, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy at the chosen positions. Only they have a label, so the vocabulary-sized
    head runs on them alone (about 15% of the tokens) instead of on every position."""
    labels = batch["labels"]
    chosen = labels != IGNORE_INDEX  # b t
    hidden = model.encoder(batch["input_ids"])[chosen]  # n e
    logits = model.mlm_head(hidden[None], model.encoder.token_embed)[0]  # n v
    return F.cross_entropy(logits.float(), labels[chosen])


@torch.no_grad()
def masked_accuracy(model: EncoderForMaskedLM, data: ExampleDataset) -> float:
    """How often the top prediction at a masked position is the original token."""
    model.eval()
    device = next(model.parameters()).device
    inputs = torch.stack([e["input_ids"] for e in data.examples]).to(device)
    labels = torch.stack([e["labels"] for e in data.examples]).to(device)
    chosen = labels != IGNORE_INDEX
    return float((model(inputs).argmax(-1)[chosen] == labels[chosen]).float().mean())


def new_mlm_model(corpus: MLMCorpus, seed: int = 0, **config) -> EncoderForMaskedLM:
    """A ``tiny_config`` masked LM with BERT's initialisation."""
    torch.manual_seed(seed)
    return EncoderForMaskedLM(tiny_config(corpus.vocab_size, **config))


def train_mlm(steps: int = 400, seed: int = 0, corpus: MLMCorpus | None = None, batch_size: int = 32,
              lr: float = 3e-3, progress: bool = False, **config) -> tuple[EncoderForMaskedLM, History, dict]:
    """Masked-LM pre-training (RoBERTa's recipe: dynamic masks, one segment, no NSP) of a tiny BERT.

    ``metrics``: ``val_loss`` (nats per masked token), ``val_accuracy`` (top-1 at masked
    positions) and ``unigram_loss``, the loss of guessing every masked token from the training
    frequencies alone: the number to beat.
    """
    corpus = corpus or mlm_corpus()
    model = new_mlm_model(corpus, seed, **config)
    train_data, val_data = mlm_datasets(corpus, seed)
    history = train(model, train_data, val_data, TrainConfig(
        max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.01,
        eval_every=max(1, steps // 10), eval_batches=None, eval_batch_size=256, seed=seed, progress=progress),
        loss_fn=mlm_loss)
    return model.eval(), history, mlm_metrics(model, corpus, seed)


def mlm_metrics(model: EncoderForMaskedLM, corpus: MLMCorpus, seed: int = 0) -> dict[str, float]:
    """``val_loss``, ``val_accuracy`` and ``unigram_loss`` on the seeded validation blanks."""
    _, val_data = mlm_datasets(corpus, seed)
    targets = torch.stack([e["labels"] for e in val_data.examples])
    train_ids = torch.cat([s[1:-1] for s in corpus.train_sentences])
    return {
        "val_loss": evaluate(model, val_data, 256, mlm_loss),
        "val_accuracy": masked_accuracy(model, val_data),
        "unigram_loss": unigram_cross_entropy(train_ids, targets[targets != IGNORE_INDEX], corpus.vocab_size),
    }


@torch.no_grad()
def fill_masks(model: EncoderForMaskedLM, corpus: MLMCorpus, text: str, top_k: int = 3) -> list[list[str]]:
    """The ``top_k`` guesses for every ``[MASK]`` in ``text``, in order of position."""
    model.eval()
    ids = corpus.encode(text)[None].to(next(model.parameters()).device)  # 1 t
    logits = model(ids)[0]  # t v
    never = [*corpus.special_ids, corpus.id("[UNK]"), corpus.id("[MASK]")]
    guesses = []
    for pos in (ids[0] == corpus.id("[MASK]")).nonzero().flatten().tolist():
        logits[pos, never] = float("-inf")
        guesses.append([corpus.pieces[i] for i in logits[pos].topk(top_k).indices.tolist()])
    return guesses


# The models of ``train_mlm`` and ``train_electra``, trained ahead of time for longer than a page
# can afford; ``python -m course_lib.recipes.encoder mlm|electra`` rebuilds them. They are the
# package data of ``course_lib.recipes`` (``recipes/checkpoints/``). 5,000 steps take about 4 (masked
# LM) and 7 (ELECTRA) minutes of one CPU core; the two checkpoints together stay under 3 MB.
_CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
CHECKPOINTS = {"mlm": _CHECKPOINT_DIR / "encoder_mlm.pt", "electra": _CHECKPOINT_DIR / "encoder_electra.pt"}
CHECKPOINT_STEPS = 5_000


def save_checkpoint(kind: str = "mlm", path: str | Path | None = None, steps: int = CHECKPOINT_STEPS, seed: int = 0,
                    lr: float = 2e-3, progress: bool = True) -> dict:
    """Pre-train with ``train_mlm`` (``kind="mlm"``) or ``train_electra`` and save the weights, the
    vocabulary, the loss history and the final metrics.

    The vocabulary travels with the weights: the corpus comes from the docstrings of the Python
    that runs it, so another Python version would count slightly different pieces.
    """
    trainers = {"mlm": train_mlm, "electra": train_electra}
    if kind not in trainers:
        raise ValueError(f"kind must be one of {sorted(trainers)}, got {kind!r}")
    corpus = mlm_corpus()
    model, history, metrics = trainers[kind](steps=steps, seed=seed, corpus=corpus, lr=lr, progress=progress)
    state = {"model": model.state_dict(), "pieces": corpus.pieces, "history": asdict(history), "kind": kind,
             "metrics": metrics, "steps": steps, "lr": lr, "seed": seed, "python": platform.python_version()}
    path = Path(path or CHECKPOINTS[kind])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def read_checkpoint(kind: str = "mlm", path: str | Path | None = None) -> dict:
    """What ``save_checkpoint`` saved (weights, vocabulary, history, metrics, steps), as it is:
    without the corpus, which ``load_checkpoint`` rebuilds (a second or two)."""
    path = path or CHECKPOINTS[kind]
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved["kind"] != kind:
        raise ValueError(f"{path} holds a {saved['kind']!r} checkpoint, not {kind!r}")
    return saved


def load_checkpoint(kind: str = "mlm", path: str | Path | None = None) -> tuple[nn.Module, MLMCorpus, History, dict]:
    """``(model, corpus, history, saved)``; the corpus is rebuilt here, with the saved vocabulary."""
    saved = read_checkpoint(kind, path)
    corpus = MLMCorpus(WordPieceTokenizer.from_minilm(), list(saved["pieces"]), [], [])
    split = mlm_corpus_split(corpus.tokenizer)
    corpus.train_sentences = [corpus._wrap(p, 48) for p in split["train"]]
    corpus.val_sentences = [corpus._wrap(p, 48) for p in split["val"]]
    model = new_mlm_model(corpus) if kind == "mlm" else new_electra(corpus)
    model.load_state_dict(saved["model"])
    return model.eval(), corpus, History(**saved["history"]), saved


# ---------------------------------------------------------------------------------- ELECTRA
def new_electra(corpus: MLMCorpus, seed: int = 0, disc_weight: float = 50.0) -> Electra:
    """A 1-layer generator (half the FFN width) and a 2-layer discriminator sharing one token table."""
    torch.manual_seed(seed)
    generator = EncoderForMaskedLM(tiny_config(corpus.vocab_size, num_layers=1, hidden_dim=128))
    discriminator = EncoderForTokenClassification(tiny_config(corpus.vocab_size, num_labels=1))
    return Electra(generator, discriminator, mask_id=corpus.id("[MASK]"), pad_id=0,
                   vocab_size=corpus.vocab_size, special_ids=corpus.special_ids, disc_weight=disc_weight)


def train_electra(steps: int = 200, seed: int = 0, corpus: MLMCorpus | None = None, batch_size: int = 32,
                  lr: float = 3e-3, disc_weight: float = 50.0, progress: bool = False) -> tuple[Electra, History, dict]:
    """ELECTRA pre-training from scratch: the generator fills masks, the discriminator spots the
    replacements at every position. ``metrics``: see :func:`electra_metrics`."""
    corpus = corpus or mlm_corpus()
    electra = new_electra(corpus, seed, disc_weight)
    train_data = ExampleDataset([{"input_ids": s} for s in corpus.train_sentences], None, pad_id=0)
    val_data = ExampleDataset([{"input_ids": s} for s in corpus.val_sentences], None, pad_id=0)
    history = train(electra, train_data, val_data, TrainConfig(
        max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.01,
        eval_every=max(1, steps // 5), eval_batches=None, eval_batch_size=256, seed=seed, progress=progress),
        loss_fn=lambda model, batch: model(batch["input_ids"]).loss)
    return electra.eval(), history, electra_metrics(electra, corpus, seed)


@torch.no_grad()
def electra_metrics(electra: Electra, corpus: MLMCorpus, seed: int = 0) -> dict[str, float]:
    """Replaced-token detection on the ordinary tokens of the validation sentences (padding,
    [CLS] and [SEP] left out), with a seeded mask and seeded samples.

    ``auc``: the discriminator's ROC AUC; ``frequency_auc``: that of a detector reading no
    context, which flags rare tokens (a weak generator samples them more often than text uses
    them); ``disc_loss`` next to ``base_rate_loss``, the loss of predicting the replaced fraction
    everywhere; ``replaced_fraction``; the generator's ``mlm_loss``.
    """
    electra.eval()
    device = next(electra.parameters()).device
    ids = PadCollate(0)([{"input_ids": s} for s in corpus.val_sentences])["input_ids"].to(device)
    out = electra(ids, sample_generator=torch.Generator().manual_seed(seed))
    real = ~torch.isin(ids, torch.tensor(corpus.special_ids, device=device))  # [CLS]/[SEP] are never replaced
    replaced = out.is_replaced[real]
    rate = replaced.float().mean().clamp(1e-6, 1 - 1e-6).item()
    counts = torch.bincount(torch.cat(corpus.train_sentences), minlength=corpus.vocab_size).float()
    rarity = -torch.log((counts + 1) / (counts.sum() + corpus.vocab_size)).to(device)  # unigram surprisal
    return {
        "auc": roc_auc(out.disc_logits[real], replaced),
        "frequency_auc": roc_auc(rarity[out.corrupted][real], replaced),
        "disc_loss": F.binary_cross_entropy_with_logits(out.disc_logits[real].float(), replaced.float()).item(),
        "base_rate_loss": -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)),
        "replaced_fraction": rate,
        "mlm_loss": out.mlm_loss.item(),
    }


def roc_auc(scores: Tensor, positive: Tensor) -> float:
    """Probability that a random positive scores above a random negative (ties count half):
    0.5 is guessing, 1.0 a perfect ranking, whatever the decision threshold."""
    scores, positive = scores.flatten().float().cpu(), positive.flatten().cpu()
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"roc_auc needs both classes, got {len(pos)} positives and {len(neg)} negatives")
    greater = (pos[:, None] > neg[None, :]).float().mean()
    ties = (pos[:, None] == neg[None, :]).float().mean()
    return float(greater + 0.5 * ties)
