"""One small training loop for every chapter, on one process or several.

``train(model, train_data, val_data, config)`` runs AdamW with a linear warm-up and a cosine decay
(Loshchilov and Hutter, 2019, "Decoupled Weight Decay Regularization"), clips the gradient norm,
evaluates now and then, saves a checkpoint, shows a tqdm bar and returns the loss history.

The model contract is small: ``model(batch)`` returns the scalar loss, or you pass
``loss_fn(model, batch) -> loss``. ``batch`` is whatever the dataset's ``collate_fn`` builds
(for ``course_lib.data``: a dict of tensors), moved to the device.

Devices and precision: ``course_lib.device.pick_device`` chooses CUDA, MPS or the CPU; on CUDA
the forward pass runs under bfloat16 autocast. bfloat16 has float32's exponent range, so unlike
float16 it needs no loss scaling.

Distributed data parallel: the loop reads its rank and world size from ``torch.distributed``.
Started under ``torchrun`` or ``distributed_run`` it shards the data with a
``DistributedSampler``, wraps the model in ``DistributedDataParallel`` (which averages the
gradients across processes) and lets only rank 0 show progress and write checkpoints. With the
same global ``batch_size``, the loss curve matches the single-process run.
"""
from __future__ import annotations

import math
import os
import pickle
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from .data.common import reshuffled_batches
from .device import pick_device, seed_everything


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 32  # global: split evenly across processes
    lr: float = 3e-4  # peak learning rate, reached at the end of warm-up
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.1  # only on matrices; biases, norms and 1-d params are not decayed
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0  # max global gradient norm; None turns clipping off
    eval_every: int = 200  # also evaluates after the last step
    eval_batches: int | None = 20  # None evaluates the whole validation set
    eval_batch_size: int | None = None  # defaults to batch_size
    seed: int = 0
    device: str | None = None  # None lets pick_device decide
    mixed_precision: bool = True  # bfloat16 autocast, used on CUDA only
    checkpoint_path: str | None = None  # written after the last step; "{step}" in it is filled in
    checkpoint_every: int | None = None  # also write one every this many steps
    resume_from: str | None = None  # a checkpoint to continue from: same losses as never stopping
    progress: bool = True
    num_workers: int = 0


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)  # one per step, averaged over processes
    lr: list[float] = field(default_factory=list)  # one per step
    val_step: list[int] = field(default_factory=list)  # the step after which each evaluation ran
    val_loss: list[float] = field(default_factory=list)


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.1) -> float:
    """The learning-rate multiplier at ``step``: linear from 1/warmup up to 1, then a cosine down
    to ``min_lr_ratio`` at ``max_steps``. Warm-up keeps Adam's first, poorly estimated updates small."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices (and embeddings) only, as in GPT-2 and nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) dict, list or tuple to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def _rank_and_world_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _compute_loss(model: nn.Module, batch: Any, loss_fn: Callable | None) -> Tensor:
    loss = loss_fn(model, batch) if loss_fn is not None else model(batch)
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"the model (or loss_fn) must return a scalar loss tensor, got {shape}")
    return loss


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch
    return next(_batch_size(v) for v in values if isinstance(v, (Tensor, dict, list, tuple)))


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int, loss_fn: Callable | None = None,
             collate_fn: Callable | None = None, max_batches: int | None = None, seed: int = 0,
             device: torch.device | None = None, mixed_precision: bool = True) -> float:
    """Mean loss over (a fixed, seeded sample of) ``data``, weighting each batch by its size.

    The sample is the same at every call, so successive evaluations are comparable.
    """
    if len(data) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = device or next(model.parameters()).device
    indices = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    if max_batches is not None:
        indices = indices[: max_batches * batch_size]
    loader = DataLoader(Subset(data, indices), batch_size=batch_size,
                        collate_fn=collate_fn or getattr(data, "collate_fn", None))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        size = _batch_size(batch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision and device.type == "cuda"):
            total += float(_compute_loss(model, to_device(batch, device), loss_fn)) * size
        count += size
    model.train(was_training)
    return total / count


def save_checkpoint(path: str, model: nn.Module, optimizer=None, scheduler=None, step: int = 0,
                    history: History | None = None, config: TrainConfig | None = None) -> None:
    """Write model, optimizer and scheduler state, the step, history and RNG state to ``path``."""
    state = {"model": model.state_dict(), "step": step, "rng": torch.get_rng_state(),
             "history": asdict(history) if history else None, "config": asdict(config) if config else None,
             "optimizer": optimizer.state_dict() if optimizer else None,
             "scheduler": scheduler.state_dict() if scheduler else None}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: str, model: nn.Module, optimizer=None, scheduler=None) -> dict:
    """Restore what ``save_checkpoint`` wrote into the given objects; returns the raw checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    return state


def _batches(loader: DataLoader, sampler: DistributedSampler, start_step: int):
    """Batches forever, one epoch after another; skips the batches a resumed run has seen."""
    epoch, skip = divmod(start_step, len(loader))
    while True:
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every process
        for i, batch in enumerate(loader):
            if i >= skip:
                yield batch
        epoch, skip = epoch + 1, 0


def fine_tune_steps(model: nn.Module, train_data, loss_fn: Callable, steps: int, lr: float, seed: int,
                    batch_size: int, evaluate_at: Callable[[int], None], eval_every: int) -> None:
    """Fine-tune every weight of ``model`` in place on a small ``ExampleDataset``: AdamW (decay on
    matrices), warm-up over a tenth of the steps then cosine decay, gradient clipping, and full
    batches of reshuffled epochs. ``evaluate_at(step)`` runs every ``eval_every`` steps and last.

    The few-label experiments of the book compare starts (a checkpoint, random weights) through
    this one loop, so that only the start differs.
    """
    config = TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10),
                         weight_decay=0.01, seed=seed)
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, config.warmup_steps, steps, config.min_lr_ratio))
    # A small training set takes many epochs; each is reshuffled.
    batches = reshuffled_batches(train_data, batch_size, steps, torch.Generator().manual_seed(seed))
    for step, batch in enumerate(batches, start=1):
        model.train()
        loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        if step % eval_every == 0 or step == steps:
            evaluate_at(step)


def train(model: nn.Module, train_data: Dataset, val_data: Dataset | None = None,
          config: TrainConfig | None = None, loss_fn: Callable | None = None,
          collate_fn: Callable | None = None) -> History:
    """Train ``model`` in place for ``config.max_steps`` steps and return its ``History``.

    ``loss_fn(model, batch)`` receives the model as wrapped for training (a DDP wrapper when
    distributed): call it, rather than reading its attributes.
    """
    config = config or TrainConfig()
    rank, world_size = _rank_and_world_size()
    if config.batch_size % world_size:
        raise ValueError(f"batch_size={config.batch_size} must divide evenly over {world_size} processes")
    for name, minimum in (("max_steps", 1), ("batch_size", 1), ("warmup_steps", 0), ("eval_every", 1)):
        if getattr(config, name) < minimum:
            raise ValueError(f"TrainConfig.{name} must be at least {minimum}, got {getattr(config, name)}")
    seed_everything(config.seed)
    device = pick_device(config.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    model.to(device)
    use_amp = config.mixed_precision and device.type == "cuda"

    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(
        step, config.warmup_steps, config.max_steps, config.min_lr_ratio))
    history, start_step = History(), 0
    if config.resume_from is not None:
        state = load_checkpoint(config.resume_from, model, optimizer, scheduler)
        history, start_step = History(**state["history"]), state["step"]
        torch.set_rng_state(state["rng"])  # dropout then draws what it would have drawn
    wrapped = model
    if world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # Even on one process a DistributedSampler (with one replica) orders the data, so that the
    # union of the shards of a distributed run is exactly the single-process batch.
    sampler = DistributedSampler(train_data, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=config.seed, drop_last=True)
    loader = DataLoader(train_data, batch_size=config.batch_size // world_size, sampler=sampler,
                        drop_last=True, num_workers=config.num_workers,
                        collate_fn=collate_fn or getattr(train_data, "collate_fn", None),
                        generator=torch.Generator().manual_seed(config.seed))
    if len(loader) == 0:
        raise ValueError(f"train_data has {len(train_data)} examples, fewer than one batch "
                         f"of {config.batch_size}")
    batches = _batches(loader, sampler, start_step)

    def run_eval() -> float:
        # Every process evaluates the same batches on its unwrapped model: a little repeated
        # work, but the number is exact and identical everywhere without any communication.
        return evaluate(model, val_data, config.eval_batch_size or config.batch_size, loss_fn,
                        collate_fn, config.eval_batches, config.seed, device, config.mixed_precision)

    bar = tqdm(range(start_step, config.max_steps), initial=start_step, total=config.max_steps,
               disable=not config.progress or rank != 0, desc="train")
    model.train()
    for step in bar:
        batch = to_device(next(batches), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = _compute_loss(wrapped, batch, loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP this also averages the gradients over processes
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        history.lr.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()

        loss = loss.detach().double()  # float64 keeps the report exact for float64 models too
        if world_size > 1:  # report the global-batch loss, not this process's share of it
            dist.all_reduce(loss)
            loss /= world_size
        history.train_loss.append(loss.item())
        done = step + 1
        if val_data is not None and (done % config.eval_every == 0 or done == config.max_steps):
            history.val_step.append(done)
            history.val_loss.append(run_eval())
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}",
                        val=f"{history.val_loss[-1]:.4f}" if history.val_loss else "-")
        last = done == config.max_steps
        periodic = config.checkpoint_every and done % config.checkpoint_every == 0
        if config.checkpoint_path and (last or periodic):
            if rank == 0:
                path = config.checkpoint_path.format(step=done)
                save_checkpoint(path, model, optimizer, scheduler, done, history, config)
            if world_size > 1:
                dist.barrier()  # nobody races ahead to read a checkpoint rank 0 is still writing
    return history


def _distributed_worker(rank: int, world_size: int, backend: str, init_file: str, result_file: str,
                        fn: Callable, args: tuple) -> None:
    torch.set_num_threads(1)  # the processes share the machine's cores
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = fn(*args)
        if rank == 0:
            with open(result_file, "wb") as f:
                pickle.dump(result, f)
    finally:
        dist.destroy_process_group()


def distributed_run(fn: Callable, world_size: int = 2, backend: str = "gloo", args: tuple = ()) -> Any:
    """Run ``fn(*args)`` on ``world_size`` processes joined by ``torch.distributed``; return rank 0's result.

    ``fn`` must be importable (defined in a module, not in a notebook cell), because each process
    is a fresh interpreter (``spawn``). Inside, ``train`` sees the process group and shards itself.
    ``torchrun --nproc-per-node 2 script.py`` is the command-line way to do the same.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size}")
    with tempfile.TemporaryDirectory() as tmp:
        init_file, result_file = os.path.join(tmp, "rendezvous"), os.path.join(tmp, "result.pkl")
        torch.multiprocessing.spawn(_distributed_worker, nprocs=world_size, join=True,
                                    args=(world_size, backend, init_file, result_file, fn, args))
        with open(result_file, "rb") as f:
            return pickle.load(f)
