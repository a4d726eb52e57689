"""The training assignment graded end to end in one batch: typical mistakes lose exactly the
points of the cells they break (a schedule without warm-up, clipping that
returns the clipped norm or clips each tensor alone, evaluation that leaves the model in eval
mode, a loop that never clears its gradients, a resume that forgets the batch generator), a
torch scheduler is flagged, and correct implementations in other styles get full marks.

The hidden tests of ``train`` run it with correct helpers, so a slip in another part costs
that part only; slips in different parts therefore share a notebook (each notebook costs
seconds of kernel start and a few seconds of training)."""
from __future__ import annotations

from functools import partial

import pytest

from tests import nbgrader_helpers as helpers
from tests.nbgrader_helpers import SOLUTIONS, grade_variants

pytestmark = pytest.mark.slow

SOURCE = SOLUTIONS / "training" / "training.ipynb"
solution_body = partial(helpers.solution_body, SOURCE)
edited = partial(helpers.edited, SOURCE)


# --- Typical mistakes -------------------------------------------------------------------

# Cosine from step 0, no warm-up: the first steps run at nearly max_lr.
NO_WARMUP = edited("lr_at", "    if step < warmup_steps:\n        return max_lr * (step + 1) / warmup_steps\n", "")

# torch's schedulers, which this assignment forbids: right numbers, flagged, the part scores 0.
CALLS_SCHEDULER = """
optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=max_lr)

def factor(s):
    if s < warmup_steps:
        return (s + 1) / warmup_steps
    if s >= total_steps:
        return min_lr / max_lr
    progress = (s - warmup_steps) / (total_steps - warmup_steps)
    return (min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2) / max_lr

schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
for _ in range(step):
    optimizer.step()
    schedule.step()
return optimizer.param_groups[0]["lr"]
"""

# Returns the norm after clipping, which is max_norm whenever it clipped.
NORM_AFTER_CLIPPING = edited("clip_grad_norm", "    return total\n", "    return min(total, max_norm)\n")

# Clips each tensor by its own norm: every gradient's direction changes.
PER_TENSOR = """
grads = [p.grad for p in parameters if p.grad is not None]
total = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
for g in grads:
    norm = float(g.norm())
    if norm > max_norm:
        g.mul_(max_norm / (norm + 1e-6))
return total
"""

# Never puts the model back in training mode.
EVAL_STUCK = edited("estimate_loss", "    model.train(was_training)\n", "")

# Never clears the gradients: they pile up from step to step, so the model learns far less in
# 300 steps, and a resumed run (which starts with no old gradients) leaves the straight one.
NO_ZERO_GRAD = edited("train", "        optimizer.zero_grad(set_to_none=True)\n", "")

# Restores everything but the batch generator: the resumed run trains on other batches.
NO_GENERATOR_RESTORE = edited("train", '        generator.set_state(state["generator"])\n', "")

# --- Correct alternatives ---------------------------------------------------------------

# Windows by index arithmetic; the schedule as cos^2 of a quarter turn (= (1 + cos)/2);
# the norm of one concatenated vector, always scaled by a factor clamped at 1; the loss by
# einsum over one-hot targets; a for loop with its own checkpoint layout.
INDEXED_BATCH = """
starts = torch.randint(0, len(ids) - block_size, (batch_size, 1), generator=generator)  # (b, 1)
positions = starts + torch.arange(block_size)  # (b, t)
return ids[positions], ids[positions + 1]
"""

SQUARED_COSINE = """
if step < warmup_steps:
    return max_lr * min(1.0, (step + 1) / warmup_steps)
progress = 1.0 if step >= total_steps else (step - warmup_steps) / (total_steps - warmup_steps)
return min_lr + (max_lr - min_lr) * math.cos(math.pi * progress / 2) ** 2
"""

CONCATENATED_NORM = """
params = [p for p in parameters if p.grad is not None]
if not params:
    return 0.0
total = torch.linalg.vector_norm(torch.cat([p.grad.detach().double().flatten() for p in params]))
factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)
for p in params:
    p.grad.mul_(factor.to(p.grad.dtype))
return total.item()
"""

EINSUM_LOSS = """
mode = model.training
model.eval()
try:
    losses = []
    with torch.no_grad():
        for _ in range(batches):
            x, y = get_batch(ids, batch_size, block_size, generator)
            log_probs = torch.log_softmax(model(x), dim=-1)  # (b, t, v)
            targets = F.one_hot(y, log_probs.shape[-1]).to(log_probs.dtype)  # (b, t, v)
            losses.append(-torch.einsum("btv,btv->bt", log_probs, targets).mean())
    return torch.stack(losses).mean().item()
finally:
    model.train(mode)
"""

FOR_LOOP_TRAIN = """
decay, no_decay = [], []
for _, p in model.named_parameters():
    (decay if p.ndim >= 2 else no_decay).append(p)
optimizer = torch.optim.AdamW([dict(params=decay, weight_decay=config.weight_decay),
                               dict(params=no_decay, weight_decay=0.0)], betas=config.betas)
batches = torch.Generator()
batches.manual_seed(config.seed)
start, history = 0, []
if resume:
    saved = torch.load(checkpoint_path, weights_only=True)
    model.load_state_dict(saved["weights"])
    optimizer.load_state_dict(saved["adamw"])
    batches.set_state(saved["rng"])
    start, history = saved["done"], list(saved["history"])
last = config.steps if stop_after is None else min(stop_after, config.steps)
for s in range(start, last):
    model.train()
    optimizer.zero_grad()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(s, config.max_lr, config.warmup_steps, config.steps, config.min_lr)
    x, y = get_batch(train_ids, config.batch_size, config.block_size, generator=batches)
    logits = model(x)
    F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).backward()
    clip_grad_norm(model.parameters(), config.grad_clip)
    optimizer.step()
    done = s + 1
    evaluate = done == config.steps or done % config.eval_every == 0
    if evaluate:
        history.append((done, *(estimate_loss(model, data, config.batch_size, config.block_size, config.eval_batches,
                                              torch.Generator().manual_seed(config.seed + 1))
                                for data in (train_ids, val_ids))))
    if checkpoint_path and (evaluate or done == stop_after):
        torch.save(dict(weights=model.state_dict(), adamw=optimizer.state_dict(), rng=batches.get_state(),
                        done=done, history=history), checkpoint_path)
return history
"""

# Windows by unfold; the schedule as one expression of clamped fractions; the norm as the
# hypotenuse of the per-tensor norms; inference_mode; a while loop that saves every step.
UNFOLD_BATCH = """
windows = ids.unfold(0, block_size + 1, 1)  # (n - t, t + 1), a view
rows = windows[torch.randint(windows.shape[0], (batch_size,), generator=generator)]
return rows[:, :-1].clone(), rows[:, 1:].clone()
"""

CLAMPED_FRACTIONS = """
warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
decayed = min(max(step - warmup_steps, 0) / max(total_steps - warmup_steps, 1), 1.0)
if step >= total_steps:
    decayed = 1.0
cosine = min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * decayed))
return warm * max_lr if step < warmup_steps else cosine
"""

HYPOT_NORM = """
grads = [p.grad for p in parameters if p.grad is not None]
total = math.hypot(*(torch.linalg.norm(g.double()).item() for g in grads))
if total > max_norm:
    torch._foreach_mul_(grads, max_norm / (total + 1e-6))
return total
"""

INFERENCE_MODE_LOSS = """
mode = model.training
model.train(False)
with torch.inference_mode():
    losses = [F.cross_entropy(model(x).transpose(1, 2), y).item()
              for x, y in (get_batch(ids, batch_size, block_size, generator) for _ in range(batches))]
model.train(mode)
return sum(losses) / batches
"""

WHILE_LOOP_TRAIN = """
groups = {True: [], False: []}
for p in model.parameters():
    groups[p.dim() >= 2].append(p)
optimizer = torch.optim.AdamW([{"params": groups[True], "weight_decay": config.weight_decay},
                               {"params": groups[False], "weight_decay": 0.0}], lr=0.0, betas=config.betas)
rng = torch.Generator().manual_seed(config.seed)
state = {"step": 0, "history": []}
if resume:
    state = torch.load(checkpoint_path)
    model.load_state_dict(state.pop("model"))
    optimizer.load_state_dict(state.pop("optimizer"))
    rng.set_state(state.pop("rng"))
model.train()
while state["step"] < config.steps and state["step"] != stop_after:
    step = state["step"]
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, config.max_lr, config.warmup_steps, config.steps, config.min_lr)
    x, y = get_batch(train_ids, config.batch_size, config.block_size, rng)
    for p in model.parameters():
        p.grad = None
    F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    clip_grad_norm(model.parameters(), config.grad_clip)
    optimizer.step()
    state["step"] = step + 1
    if state["step"] % config.eval_every == 0 or state["step"] == config.steps:
        losses = [estimate_loss(model, data, config.batch_size, config.block_size, config.eval_batches,
                                torch.Generator().manual_seed(config.seed + 1)) for data in (train_ids, val_ids)]
        state["history"].append((state["step"], losses[0], losses[1]))
    if checkpoint_path is not None:
        torch.save({**state, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.get_state()},
                   checkpoint_path)
return state["history"]
"""


def test_training_mistakes_and_alternatives(tmp_path):
    variants = {
        "no_warmup_norm_after_eval_stuck_no_zero_grad": {"lr_at": [NO_WARMUP], "clip_grad_norm": [NORM_AFTER_CLIPPING],
                                                         "estimate_loss": [EVAL_STUCK], "train": [NO_ZERO_GRAD]},
        "scheduler_per_tensor_no_generator": {"lr_at": [CALLS_SCHEDULER], "clip_grad_norm": [PER_TENSOR],
                                              "train": [NO_GENERATOR_RESTORE]},
        "indexed_einsum_for_loop": {"get_batch": [INDEXED_BATCH], "lr_at": [SQUARED_COSINE],
                                    "clip_grad_norm": [CONCATENATED_NORM], "estimate_loss": [EINSUM_LOSS],
                                    "train": [FOR_LOOP_TRAIN]},
        "unfold_inference_while_loop": {"get_batch": [UNFOLD_BATCH], "lr_at": [CLAMPED_FRACTIONS],
                                        "clip_grad_norm": [HYPOT_NORM], "estimate_loss": [INFERENCE_MODE_LOSS],
                                        "train": [WHILE_LOOP_TRAIN]},
    }
    graded = grade_variants("training", variants, tmp_path)
    full = graded.total
    graded.check({
        "no_warmup_norm_after_eval_stuck_no_zero_grad": (
            full - graded.part("lr_at") - graded.part("clip_grad_norm") - graded.part("estimate_loss")
            - sum(graded.points[g] for g in ("test_train_loss_hidden", "test_train_resume_visible",
                                              "test_train_resume_hidden"))),
        "scheduler_per_tensor_no_generator": (
            full - graded.part("lr_at") - graded.part("clip_grad_norm")
            - graded.points["test_train_resume_visible"] - graded.points["test_train_resume_hidden"]),
        "indexed_einsum_for_loop": full,
        "unfold_inference_while_loop": full,
    }, flagged={"scheduler_per_tensor_no_generator": ["lr_at"]})
