"""The choosing assignment graded end to end in one batch: typical mistakes lose exactly the points
of the cells they break (an encoder re-initialised instead of kept, a word's tag on every one of
its pieces, a learning rate that undoes the pre-training), a loop built on the library's trainer
is flagged, and correct solutions in other styles (a tanh hidden layer with an einsum head, words
looked up piece by piece, shuffled epochs with clipping and no warm-up; a plain linear head
behind dropout, twice the rate with a linear decay and batches of 16; an encoder left to build
its mask from the ids) get full marks.

The hidden test of ``fine_tune`` runs it with a correct head and encoding, so a slip in another
part costs that part only; slips in different parts therefore share a notebook (each notebook
costs seconds of kernel start and about 200 fine-tuning steps)."""
from __future__ import annotations

from functools import partial

import pytest

from tests import nbgrader_helpers as helpers
from tests.nbgrader_helpers import SOLUTIONS, grade_variants

pytestmark = pytest.mark.slow

SOURCE = SOLUTIONS / "choosing" / "choosing.ipynb"
edited = partial(helpers.edited, SOURCE)

# --- Typical mistakes -------------------------------------------------------------------

# Starts the encoder again from BERT's random initialisation: right shapes, no checkpoint left.
REINITIALISED = edited("tagger_from_checkpoint", "    class Tagger(nn.Module):\n",
                       "    encoder.init_weights()\n    class Tagger(nn.Module):\n")

# Gives a word's tag to every one of its pieces: a name of three pieces counts three times.
EVERY_PIECE_LABELLED = edited("encode_tagged", "[tag] + [IGNORE_INDEX] * (len(word_pieces) - 1)",
                              "[tag] * len(word_pieces)")

# Ten times the rate the checkpoint was pre-trained with: the first steps wipe out what it knew.
RATE_TOO_HIGH = """
ids, attn_mask, labels = encode_tagged(texts, tags, tokenizer, MAX_LEN)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
generator = torch.Generator().manual_seed(seed)
losses = []
model.train()
for step in range(steps):
    batch = torch.randint(len(texts), (BATCH_SIZE,), generator=generator)
    loss = F.cross_entropy(model(ids[batch], attn_mask[batch]).flatten(0, 1), labels[batch].flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
model.eval()
return losses
"""

# Not a mistake: without attn_mask the Encoder builds the same mask from the [PAD] ids (pad_id 0),
# so this Part 2 keeps its points beside a flagged Part 4.
MASK_FROM_IDS = edited("tagger_from_checkpoint", "self.encoder(ids, attn_mask=attn_mask[:, None, None, :])",
                          "self.encoder(ids)")

# The library's trainer, which this assignment forbids: flagged, the part scores 0.
CALLS_LIBRARY = """
from course_lib.train import TrainConfig, make_optimizer
ids, attn_mask, labels = encode_tagged(texts, tags, tokenizer, MAX_LEN)
optimizer = make_optimizer(model, TrainConfig(lr=lr, max_steps=steps))
losses = []
for step in range(steps):
    model.train()
    batch = torch.randint(len(texts), (BATCH_SIZE,))
    loss = F.cross_entropy(model(ids[batch], attn_mask[batch]).flatten(0, 1), labels[batch].flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
model.eval()
return losses
"""

# --- Correct alternatives ---------------------------------------------------------------

# A hidden layer with a tanh before the tags, the logits by einsum; words looked up piece by
# piece and padded with pad_sequence; shuffled epochs, gradient clipping, a constant rate.
TANH_HEAD = """
width = encoder.config.embed_dim


class HiddenLayerTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = encoder
        self.hidden = nn.Linear(width, width)
        self.weight = nn.Parameter(torch.randn(num_tags, width) * 0.02)
        self.bias = nn.Parameter(torch.zeros(num_tags))

    def forward(self, ids, attn_mask):
        states = self.encoder(ids, attn_mask=attn_mask.view(ids.shape[0], 1, 1, ids.shape[1]))
        return torch.einsum("bte,ce->btc", torch.tanh(self.hidden(states)), self.weight) + self.bias


return HiddenLayerTagger()
"""

PAD_SEQUENCE_ENCODE = """
from torch.nn.utils.rnn import pad_sequence

vocab = tokenizer.token_to_id
id_rows, label_rows = [], []
for text, word_tags in zip(texts, tags):
    row, row_labels = [vocab["[CLS]"]], [IGNORE_INDEX]
    for word, tag in zip(text.split(" "), word_tags):
        for k, piece in enumerate(tokenizer.tokenize(word)):
            row.append(vocab[piece])
            row_labels.append(tag if k == 0 else IGNORE_INDEX)
    keep = min(len(row), max_len - 1)
    id_rows.append(torch.tensor(row[:keep] + [vocab["[SEP]"]]))
    label_rows.append(torch.tensor(row_labels[:keep] + [IGNORE_INDEX]))
ids = pad_sequence(id_rows, batch_first=True, padding_value=vocab["[PAD]"])
labels = pad_sequence(label_rows, batch_first=True, padding_value=IGNORE_INDEX)
lengths = torch.tensor([len(r) for r in id_rows])
return ids, torch.arange(ids.shape[1])[None, :] < lengths[:, None], labels
"""

EPOCHS_LOOP = """
ids, attn_mask, labels = encode_tagged(texts, tags, tokenizer, MAX_LEN)
optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
generator = torch.Generator()
generator.manual_seed(seed)
losses, order = [], []
while len(losses) < steps:
    if len(order) < BATCH_SIZE:  # a new epoch, in a new order
        order = torch.randperm(len(texts), generator=generator).tolist()
    batch, order = order[:BATCH_SIZE], order[BATCH_SIZE:]
    model.train()
    logits = model(ids[batch], attn_mask[batch])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[batch].reshape(-1), ignore_index=-100)
    for p in model.parameters():
        p.grad = None
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    losses.append(float(loss))
model.eval()
return losses
"""

# A plain linear head written as a Sequential with dropout; twice the default rate, decayed
# linearly to zero by a scheduler, batches of 16.
DROPOUT_LINEAR_HEAD = """
model = nn.Module()
model.encoder = encoder
model.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(encoder.config.embed_dim, num_tags))
model.forward = lambda ids, attn_mask: model.head(model.encoder(ids, attn_mask=attn_mask[:, None, None, :]))
return model
"""

DECAY_LOOP = """
ids, attn_mask, labels = encode_tagged(texts, tags, tokenizer, MAX_LEN)
optimizer = torch.optim.AdamW(model.parameters(), lr=2 * lr)
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
generator = torch.Generator().manual_seed(seed)
losses = []
for step in range(steps):
    model.train()
    batch = torch.randint(len(texts), (16,), generator=generator)
    loss = F.cross_entropy(model(ids[batch], attn_mask[batch]).transpose(1, 2), labels[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    losses.append(loss.item())
model.eval()
return losses
"""


def test_choosing_mistakes_and_alternatives(tmp_path):
    variants = {
        "reinitialised_every_piece_rate_too_high": {"tagger_from_checkpoint": [REINITIALISED],
                                                    "encode_tagged": [EVERY_PIECE_LABELLED],
                                                    "fine_tune": [RATE_TOO_HIGH]},
        "mask_from_ids_calls_library": {"tagger_from_checkpoint": [MASK_FROM_IDS],
                                           "fine_tune": [CALLS_LIBRARY]},
        "tanh_einsum_epochs": {"tagger_from_checkpoint": [TANH_HEAD], "encode_tagged": [PAD_SEQUENCE_ENCODE],
                               "fine_tune": [EPOCHS_LOOP]},
        "dropout_linear_decay": {"tagger_from_checkpoint": [DROPOUT_LINEAR_HEAD], "fine_tune": [DECAY_LOOP]},
    }
    graded = grade_variants("choosing", variants, tmp_path)
    full = graded.total
    graded.check({
        "reinitialised_every_piece_rate_too_high": graded.without(
            "test_tagger_from_checkpoint_hidden", "test_encode_tagged_hidden", "test_fine_tune_hidden"),
        "mask_from_ids_calls_library": full - graded.part("fine_tune"),
        "tanh_einsum_epochs": full,
        "dropout_linear_decay": full,
    }, flagged={"mask_from_ids_calls_library": ["fine_tune"]})
