"""End-to-end fine-tuning in one loop you can read top to bottom (the shape of `pretrain`'s).

The recipe is MAE's ``main_finetune.py``, which I-JEPA's Table 2 and App. D adapt (see
``docs/finetuning.md``), built from timm's parts: RandAugment and the training crop
(``create_transform``), ``Mixup``/cutmix, the label-smoothing and soft-target losses, the
layer-decay parameter groups (``param_groups_layer_decay``), the warm-up + cosine schedule
(``CosineLRScheduler``, per step) and drop path in the ViT itself.

Launch: ``ijepa-eval finetune`` (one process), or under ``torchrun`` as `pretrain` is: every rank
builds the same network, DistributedSampler gives each ``batch_size / world`` images per step, DDP
averages the gradients, and rank 0 alone evaluates and writes.

Randomness, so that a run resumed from an epoch checkpoint replays exactly what the
uninterrupted run did, and a run on N processes sees the images one process would:

- each training image's augmentation (crop, flip, RandAugment) is a function of
  ``(seed, epoch, item)`` alone (`SeededItems`), whatever the worker, rank or world size;
- mixup/cutmix (numpy) and drop path (torch) draw from streams seeded by ``(seed, rank, epoch)``,
  and batch-mode mixup pairs the images of each process's batch, as MAE's does: with them on, N
  processes draw other (equally distributed) numbers than one; with them off, N processes compute
  what one does (``tests/test_finetune.py`` checks 2 against 1 to 1e-5).

The reported split is evaluated once, at the end, with the last epoch's weights; nothing is
chosen. ``holdout`` > 0 sets a stratified part of the labelled set aside and reports its accuracy
after every epoch in ``log.csv``: to watch, never to choose.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ijepa_eval import __version__
from ijepa_eval.atomic import write_text
from ijepa_eval.dist import world
from ijepa_eval.errors import UserError, writing
from ijepa_eval.finetune.config import FinetuneConfig
from ijepa_eval.finetune.model import Logits, build_classifier, finetuned_payload, param_groups
from ijepa_eval.plots import plot_curves
from ijepa_eval.probes.base import classification_predictions
from ijepa_eval.probes.metrics import ClassificationMeter
from ijepa_eval.probes.split import stratified_split
from ijepa_eval.seeding import mixed_seed
from ijepa_eval.train import checkpoint
from ijepa_eval.train.log import TrainLog

console = Console()
COLUMNS = ("step", "epoch", "loss", "lr", "wd", "holdout_top1", "time")
PANELS = (("loss", "training loss"), ("lr", "learning rate (top layer)"),
          ("holdout_top1", "held-out top-1 (watched, not chosen on)"))  # fmt: skip
# Recipe keys that change no number: a resume may differ in them.
_FREE = ("workers", "log_every", "stop_after")


@dataclass
class FinetuneResult:
    """The reported split's metrics and per-item outputs (None while a run is unfinished)."""

    out: Path
    finished: bool
    metrics: dict[str, float] | None = None
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # for the run record
    net: torch.nn.Module | None = None


class SeededItems(Dataset):
    """A training set whose item ``i`` in epoch ``e`` is augmented from ``mixed_seed(seed, e, i)``.

    python's ``random``, numpy's and torch's global generators are seeded for the transform and
    restored after it, so the augmentation does not depend on which process or worker reads
    the item, and the main process's own streams are untouched when there are no workers.
    """

    def __init__(self, dataset: Any, transform: Any, seed: int) -> None:
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, target = self.dataset[index]
        seed = mixed_seed(self.seed, self.epoch, index)
        saved = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                random.seed(seed)
                np.random.seed(seed % 2**32)
                torch.manual_seed(seed)
                return self.transform(image), target
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])


def train_transform(cfg: FinetuneConfig, img_size: int, mean: Any, std: Any) -> Any:
    """timm's training transform, as MAE builds it: RandomResizedCrop, flip, RandAugment, then
    (after normalising) random erasing."""
    from timm.data import create_transform

    transform = create_transform(
        img_size,
        is_training=True,
        scale=tuple(cfg.crop_scale),
        hflip=cfg.hflip,
        color_jitter=None,  # MAE: none; RandAugment replaces it
        auto_augment=None if cfg.rand_augment == "none" else cfg.rand_augment,
        interpolation=cfg.interpolation,
        re_prob=cfg.random_erasing,
        re_mode="pixel",  # MAE's: erased boxes filled with per-pixel normal noise
        re_count=1,
        mean=tuple(mean),
        std=tuple(std),
    )
    for step in transform.transforms:
        for op in getattr(step, "ops", ()):  # RandAugment's operations
            if op.name.startswith("Posterize"):
                op.aug_fn = _posterize
    return transform


def _posterize(img: Any, bits_to_keep: int, **kwargs: Any) -> Any:
    """timm's posterize, with 0 bits kept giving a black image as the Pillow of MAE's day did:
    Pillow >= 11 refuses 0 bits, which RandAugment's increasing posterize reaches when
    ``mstd`` draws a magnitude of 10 (about 1 op in 40 at m9, std 0.5)."""
    from PIL import Image
    from timm.data.auto_augment import posterize

    if bits_to_keep < 1:
        return Image.new(img.mode, img.size)
    return posterize(img, bits_to_keep, **kwargs)


def finetune(
    encoder: Any,
    train: Any,
    test: Any,
    cfg: FinetuneConfig,
    out: str | Path,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``encoder`` (a loaded `Encoder`) on the labelled dataset ``train`` and report
    on ``test`` (both `EvalDataset` without transforms); checkpoints and logs go to ``out``.

    ``resume`` continues from ``out/latest.pth.tar`` (and starts afresh when there is none).
    """
    w = world()
    cuda = torch.cuda.is_available() and device != "cpu"
    dev = torch.device("cuda", w.local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    out = Path(out)
    latest, final = out / "latest.pth.tar", out / "finetuned.pth.tar"
    say = console.print if w.is_main else lambda *args, **kwargs: None
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; fine-tuning writes a folder")
    if (latest.exists() or final.exists()) and not resume:
        raise UserError(
            f"{out} already holds a fine-tuning run; pass --resume to continue it or choose "
            "another --out"
        )

    # -- the recipe against the data and the world: every refusal before any work
    num_classes = train.num_classes
    if num_classes is None or train.targets is None or num_classes < 2:
        raise UserError("fine-tuning needs a classification dataset with at least two classes")
    if cfg.batch_size < w.size or cfg.batch_size % w.size:
        raise UserError(
            f"batch_size={cfg.batch_size} (global) does not split evenly across {w.size} "
            f"processes; use a multiple of {w.size}"
        )
    per_process = cfg.batch_size // w.size
    mixing = cfg.mixup > 0 or cfg.cutmix > 0
    if mixing and per_process % 2:
        raise UserError(
            f"mixup/cutmix needs an even batch per process, not {per_process}; change batch_size"
        )
    fit_rows = np.arange(len(train))
    held_rows = np.array([], dtype=np.int64)
    if cfg.holdout:
        fit_rows, held_rows = stratified_split(
            torch.as_tensor(train.targets), cfg.holdout, cfg.seed
        )
    if per_process > len(fit_rows) // w.size:
        raise UserError(
            f"batch_size={cfg.batch_size} is larger than the {len(fit_rows)} training images "
            f"({len(fit_rows) // w.size} per process); lower batch_size"
        )

    # -- data: timm's training transform, seeded per item; the encoder's own for evaluation
    prep = encoder.preprocess
    fit_set = SeededItems(
        Subset(train, fit_rows.tolist()),
        train_transform(cfg, prep.img_size, prep.mean, prep.std),
        cfg.seed,
    )
    sampler = DistributedSampler(
        fit_set, num_replicas=w.size, rank=w.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    loader = DataLoader(
        fit_set,
        batch_size=per_process,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=cuda,
        drop_last=True,
        persistent_workers=False,  # re-forked each epoch: workers see this epoch's seed
    )
    steps_per_epoch = len(loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    if warmup_steps >= total_steps:
        raise UserError(
            f"warmup_epochs={cfg.warmup_epochs} leaves no epoch for the cosine schedule of "
            f"{cfg.epochs} epoch(s); lower warmup_epochs"
        )

    # -- network, optimizer, schedule, loss: timm's parts
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.scheduler import CosineLRScheduler

    torch.manual_seed(cfg.seed)  # the same head on every rank
    net = build_classifier(encoder, num_classes, drop_path=cfg.drop_path).to(dev)
    peak_lr = cfg.peak_lr(cfg.batch_size)
    optimizer = torch.optim.AdamW(param_groups(net, cfg.weight_decay, cfg.layer_decay), lr=peak_lr)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=total_steps - warmup_steps,
        lr_min=cfg.min_lr,
        warmup_t=warmup_steps,
        warmup_lr_init=0.0,
        warmup_prefix=True,  # MAE: linear from 0 for warm-up, then the cosine over the rest
        t_in_epochs=False,
    )
    mixup = None
    if mixing:
        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            prob=cfg.mixup_prob,
            switch_prob=cfg.mixup_switch_prob,
            mode="batch",
            label_smoothing=cfg.label_smoothing,
            num_classes=num_classes,
        )
        criterion: torch.nn.Module = SoftTargetCrossEntropy()  # smoothing is in the targets
    elif cfg.label_smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing)
    else:
        criterion = torch.nn.CrossEntropyLoss()

    network = encoder.info.network if encoder.info else "encoder"
    source = {
        "spec": encoder.info.spec if encoder.info else None,
        "sha256": encoder.info.sha256 if encoder.info else None,
        "network": network,
    }

    # -- resume: weights, optimizer state, where the schedule stood; the same recipe only
    start_epoch, step, elapsed = 0, 0, 0.0
    if resume and latest.is_file():
        ckpt = checkpoint.load(latest)
        _check_resumable(ckpt, latest, cfg, net, num_classes)
        start_epoch, step, elapsed = checkpoint.restore(
            ckpt, latest, {"classifier": net}, net.arch.to_dict(), optimizer
        )
        say(f"resuming {latest}: epoch {start_epoch}, step {step}")
        if ckpt.get("world_size") != w.size:
            say(
                f"[yellow]note:[/] it ran on {ckpt.get('world_size')} process(es), now {w.size}: "
                "mixup and drop path draw other numbers than an uninterrupted run"
            )
    elif resume:
        say(f"no checkpoint in {out}; starting from scratch")
    if w.is_main:
        import yaml

        with writing("the run's recipe", out / "recipe.yaml"):
            write_text(out / "recipe.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log = TrainLog(
        out / "log.csv", resume_step=step if resume else None, console=console, columns=COLUMNS
    )

    model = Logits(net)
    model_ddp = _ddp(model, dev, w.size)
    bf16 = cuda and cfg.bf16
    last_epoch = min(cfg.epochs, cfg.stop_after or cfg.epochs)
    say(
        f"fine-tuning {net.arch.name} ({network}) on {len(fit_rows)} images, {num_classes} "
        f"classes, {w.size} process(es) × {per_process} = batch {cfg.batch_size}, "
        f"{steps_per_epoch} steps/epoch, peak lr {peak_lr:.3g}, epochs {start_epoch + 1}–"
        f"{last_epoch} of {cfg.epochs}"
    )
    started = time.perf_counter() - elapsed
    for epoch in range(start_epoch, last_epoch):
        epoch_seed = mixed_seed(cfg.seed, w.rank, epoch)
        torch.manual_seed(epoch_seed)  # drop path, worker seeds
        np.random.seed(epoch_seed % 2**32)  # mixup / cutmix
        random.seed(epoch_seed)
        sampler.set_epoch(epoch)
        fit_set.epoch = epoch
        net.train()
        window: list[float] = []
        bar = _bar(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", progress and w.is_main)
        for itr, (images, targets) in enumerate(loader):
            scheduler.step_update(step)
            images = images.to(dev, non_blocking=True)
            targets = targets.to(dev, non_blocking=True)
            if mixup is not None:
                images, targets = mixup(images, targets)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = criterion(model_ddp(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)
            optimizer.step()
            step += 1
            bar.update()

            loss_value = _mean_over_ranks(loss.detach(), w.size)
            if not math.isfinite(loss_value):
                kept = f"the last good checkpoint is {latest}"
                if not latest.is_file():
                    kept = "no checkpoint was written yet"
                raise UserError(
                    f"loss is {loss_value} at step {step} (epoch {epoch + 1}); fine-tuning "
                    f"stopped and {kept}: lower lr/blr or set clip_grad"
                )
            window.append(loss_value)
            end_of_epoch = itr == steps_per_epoch - 1
            if not (step % cfg.log_every == 0 or end_of_epoch):
                continue
            held = None
            if end_of_epoch and len(held_rows) and w.is_main:
                held = _evaluate(model, Subset(train, held_rows.tolist()), prep, per_process,
                                 dev, bf16, num_classes)[0]["top1"]  # fmt: skip
            if w.is_main:
                top = max(g["lr"] for g in optimizer.param_groups)
                log.write(
                    step=step, epoch=epoch + 1, loss=sum(window) / len(window), lr=top,
                    wd=cfg.weight_decay, holdout_top1=held, time=time.perf_counter() - started,
                )  # fmt: skip
            window = []
        bar.close()

        if w.is_main:  # an atomic checkpoint every epoch
            payload = {
                "classifier": checkpoint.native_state(net),
                "opt": optimizer.state_dict(),
                "epoch": epoch + 1,
                "batch_size": per_process,
                "world_size": w.size,
                "lr": peak_lr,
                "ijepa_eval": {
                    "version": __version__,
                    "arch": net.arch.to_dict(),
                    "recipe": cfg.to_dict(),
                    "num_classes": num_classes,
                    "source": source,
                    "step": step,
                    "elapsed": time.perf_counter() - started,
                },
            }
            kept = (
                f"; the previous one (epoch {epoch}) is intact: free some space, then run "
                "again with --resume"
                if latest.is_file()
                else "; no checkpoint was written yet: free some space and run again"
            )
            checkpoint.save(latest, payload, kept=kept)
        w.barrier()

    if w.is_main and (out / "log.csv").is_file():
        with writing("the training curves", out / "curves.png"):
            plot_curves(out / "log.csv", out / "curves.png", PANELS)
    train_s = time.perf_counter() - started
    if last_epoch < cfg.epochs:
        say(f"stopped after epoch {last_epoch} (stop_after): continue with --resume")
        return FinetuneResult(out, finished=False, net=net)

    # -- the reported split: once, at the end, with the last epoch's weights
    eval_started = time.perf_counter()
    details = {
        "network": network,
        "finetuned_from": source,
        "recipe": cfg.to_dict(),
        "peak_lr": peak_lr,
        "world_size": w.size,
        "batch_size_per_process": per_process,
        "batch_size_global": cfg.batch_size,
        "steps": step,
        "train_items": int(len(fit_rows)),
        "holdout_items": int(len(held_rows)),
        "selection": "none: the reported split was evaluated once, after the last epoch, with "
        "its weights"
        + (
            "; a stratified held-out part of the labelled set was watched every epoch "
            "(log.csv holdout_top1), nothing was chosen on it"
            if len(held_rows)
            else ""
        ),
        "out": str(out),
        "finetuned": str(final),
    }
    metrics, predictions = None, {}
    if w.is_main:
        metrics_list, predictions = _evaluate(
            model, test, prep, per_process, dev, bf16, num_classes, keep=True
        )
        metrics = metrics_list
        extras = {**details, "epochs": cfg.epochs, "num_classes": num_classes,
                  "classes": list(train.classes or []), "metrics": metrics,
                  "preprocess": prep.to_dict()}  # fmt: skip
        extras.pop("finetuned")
        checkpoint.save(final, finetuned_payload(net.cpu(), network, extras))
        net.to(dev)
    metrics = _broadcast(metrics, w.size)
    details["timings"] = {"train_s": round(train_s, 3),
                          "eval_s": round(time.perf_counter() - eval_started, 3)}  # fmt: skip
    say(f"done: {final}, log {out / 'log.csv'}, curves {out / 'curves.png'}")
    return FinetuneResult(out, True, metrics, predictions, details, net)


def _check_resumable(
    ckpt: dict, path: Path, cfg: FinetuneConfig, net: Any, num_classes: int
) -> None:
    """Refuse a checkpoint of another recipe, architecture or label set, in one line."""
    ours = ckpt.get("ijepa_eval") if isinstance(ckpt.get("ijepa_eval"), dict) else {}
    if not isinstance(ckpt.get("classifier"), dict) or "recipe" not in ours:
        raise UserError(
            f"cannot resume from {path}: it was not written by ijepa-eval finetune; choose "
            "another --out"
        )
    if ours.get("arch") != net.arch.to_dict():
        diff = ", ".join(
            f"{k} {ours['arch'].get(k)}→{v}"
            for k, v in net.arch.to_dict().items()
            if (ours.get("arch") or {}).get(k) != v
        )
        raise UserError(
            f"cannot resume from {path}: it fine-tunes another architecture ({diff}); use the "
            "checkpoint it started from, or another --out"
        )
    saved, now = ours["recipe"], cfg.to_dict()
    changed = [k for k in now if k not in _FREE and saved.get(k) != now[k]]
    if changed:
        shown = ", ".join(f"{k} {saved.get(k)!r}→{now[k]!r}" for k in changed[:3])
        raise UserError(
            f"cannot resume from {path}: it ran another recipe ({shown}); resume with the same "
            "preset and -o values, or choose another --out"
        )
    if ours.get("num_classes") != num_classes:
        raise UserError(
            f"cannot resume from {path}: it was trained on {ours.get('num_classes')} classes, "
            f"this data has {num_classes}"
        )


@torch.no_grad()
def _evaluate(
    model: Logits,
    dataset: Any,
    prep: Any,
    batch_size: int,
    dev: torch.device,
    bf16: bool,
    num_classes: int,
    *,
    keep: bool = False,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Top-1, top-5, mean per-class accuracy (and, with ``keep``, per-item top-5 and targets)
    of ``model`` on ``dataset`` seen through the encoder's evaluation preprocessing."""
    was_training = model.training
    model.eval()
    view = _with_transform(dataset, prep.transform())
    loader = DataLoader(view, batch_size=batch_size, shuffle=False, num_workers=0)
    meter = ClassificationMeter(num_classes)
    scores, labels = [], []
    for images, targets in loader:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images.to(dev)).float().cpu()
        targets = torch.as_tensor(targets)
        meter.update(logits, targets)
        if keep:
            scores.append(logits)
            labels.append(targets)
    model.train(was_training)
    predictions = {}
    if keep:
        predictions = classification_predictions(torch.cat(scores), torch.cat(labels))
    return meter.compute()[0], predictions


def _with_transform(dataset: Any, transform: Any) -> Any:
    """The dataset (or a `Subset` of one) seen through ``transform``, without changing it."""
    if isinstance(dataset, Subset):
        return Subset(_with_transform(dataset.dataset, transform), dataset.indices)
    view = copy.copy(dataset)
    view.transform = transform
    return view


class _bar:
    """A transient rich progress bar over one epoch's steps (rank 0 only)."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress(
            label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task(label, total=total)
        self.progress.start()

    def update(self) -> None:
        self.progress.advance(self.task)

    def close(self) -> None:
        self.progress.stop()


def _ddp(net: torch.nn.Module, device: torch.device, world_size: int) -> torch.nn.Module:
    if world_size == 1:
        return net
    return DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)


def _mean_over_ranks(value: torch.Tensor, world_size: int) -> float:
    if world_size > 1:
        value = value.float().clone()
        tdist.all_reduce(value)  # SUM: gloo has no AVG
        value /= world_size
    return value.item()


def _broadcast(value: Any, world_size: int) -> Any:
    """Rank 0's ``value`` on every rank (the others wait for its evaluation)."""
    if world_size == 1:
        return value
    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]
