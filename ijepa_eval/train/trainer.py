"""I-JEPA pretraining in one loop you can read top to bottom.

The recipe is facebookresearch/ijepa's (see ``docs/training.md``): a context
encoder and a predictor learn to predict, from one large context block, the features the target
encoder (their EMA) gives four target blocks; loss smooth-L1 against layer-normed target tokens.

Launch (``--config`` takes a file or a preset name from ``tasks/pretrain/``)::

    # one process: the CPU, or one GPU
    ijepa-eval pretrain --config vit_tiny_synth data.root=data/synth-classes

    # one node, 8 GPUs (NCCL; on a CPU-only machine the processes use gloo)
    torchrun --standalone --nproc_per_node 8 -m ijepa_eval pretrain \\
        --config vith14_in1k data.root=/datasets/imagenet --out runs/vith14

    # several nodes: the same command on every node, meeting at one rendezvous endpoint
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_id run42 --rdzv_backend c10d \\
        --rdzv_endpoint node0.cluster:29500 -m ijepa_eval pretrain --config vith14_in1k ...

    # SLURM: one torchrun per node, the first node as the endpoint; --resume makes a
    # requeued job continue from latest.pth.tar
    srun --nodes 2 --ntasks-per-node 1 --gpus-per-node 8 bash -c 'torchrun \\
        --nnodes $SLURM_NNODES --nproc_per_node 8 --rdzv_id $SLURM_JOB_ID \\
        --rdzv_backend c10d --rdzv_endpoint $(scontrol show hostnames | head -n1):29500 \\
        -m ijepa_eval pretrain --config vith14_in1k --out runs/vith14 --resume'

Distributed training is read from the environment torchrun sets: every rank builds the same
networks, DistributedSampler gives each a shard, DDP averages gradients, the logged loss is the
mean over ranks, and rank 0 alone evaluates and writes. Randomness is a function of
``(seed, rank, epoch)`` for augmentation and ``(seed, rank, step)`` for masks, so a run resumed
from an epoch checkpoint replays exactly what the uninterrupted run did.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
import torch.distributed as tdist
import torch.nn.functional as F
import yaml
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from torchvision import transforms

from ijepa_eval import __version__
from ijepa_eval.atomic import write_text
from ijepa_eval.data import load_dataset
from ijepa_eval.dist import world
from ijepa_eval.errors import UserError, writing
from ijepa_eval.models.vit import apply_masks
from ijepa_eval.plots import plot_curves
from ijepa_eval.preprocess import IMAGENET_MEAN, IMAGENET_STD
from ijepa_eval.seeding import mixed_seed
from ijepa_eval.train import checkpoint
from ijepa_eval.train.config import PretrainConfig
from ijepa_eval.train.init import new_encoder
from ijepa_eval.train.log import TrainLog
from ijepa_eval.train.masks import MultiBlockMasks
from ijepa_eval.train.monitor import KnnMonitor
from ijepa_eval.train.predictor import Predictor, repeat_interleave_batch
from ijepa_eval.train.schedules import Schedules, apply_schedules, make_optimizer

console = Console()


def pretrain(cfg: PretrainConfig, *, resume: bool = False) -> Path:
    """Pretrain as ``cfg`` says; returns the path of ``latest.pth.tar``.

    ``resume`` continues from ``<logging.out>/latest.pth.tar`` when there is one (and starts
    afresh when there is none, so a requeued job can always pass it).
    """
    w = world()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", w.local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    out = Path(cfg.logging.out)
    latest = out / "latest.pth.tar"
    say = console.print if w.is_main else lambda *args, **kwargs: None
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pretraining writes a folder (logging.out)")
    if latest.exists() and not resume:
        raise UserError(
            f"{out} already holds a run (latest.pth.tar); pass --resume to continue it "
            "or choose another --out"
        )

    arch = cfg.model.arch()  # a shape that cannot be built stops here, before any data is read
    masks = MultiBlockMasks(arch.grid, cfg.mask, seed=cfg.seed, rank=w.rank)

    # -- data: RandomResizedCrop is the only augmentation, as in every official config
    train_transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(cfg.model.img_size, scale=cfg.data.crop_scale),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    dataset = load_dataset(
        cfg.data.dataset, cfg.data.root, cfg.data.split, transform=train_transform
    )
    if cfg.data.batch_size > len(dataset) // w.size:
        raise UserError(
            f"data.batch_size={cfg.data.batch_size} per process is larger than the "
            f"{len(dataset) // w.size} images each of the {w.size} process(es) gets from "
            f"{cfg.data.root} ({len(dataset)} images); lower data.batch_size"
        )
    sampler = DistributedSampler(
        dataset, num_replicas=w.size, rank=w.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        sampler=sampler,
        num_workers=cfg.data.workers,
        pin_memory=cuda,
        drop_last=True,
    )  # workers are re-forked each epoch, seeded from the epoch seed: replayable on resume
    iterations_per_epoch = len(loader)

    # -- networks: the context encoder and predictor learn; the target encoder is their EMA
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    encoder = new_encoder(arch).to(device)
    predictor = Predictor(
        arch.grid**2,
        arch.embed_dim,
        cfg.model.predictor_embed_dim,
        depth=cfg.model.predictor_depth,
        num_heads=arch.num_heads,
        norm_eps=arch.norm_eps,
    ).to(device)
    target_encoder = copy.deepcopy(encoder).requires_grad_(False)
    optimizer = make_optimizer(encoder, predictor)
    opt = cfg.optimization
    schedules = Schedules.from_config(opt, iterations_per_epoch)

    # -- resume: weights, optimizer state, and where the schedules stood
    start_epoch, step, elapsed = 0, 0, 0.0
    if resume and latest.is_file():
        ckpt = checkpoint.load(latest)
        nets = {"encoder": encoder, "predictor": predictor, "target_encoder": target_encoder}
        start_epoch, step, elapsed = checkpoint.restore(
            ckpt, latest, nets, arch.to_dict(), optimizer
        )
        say(f"resuming {latest}: epoch {start_epoch}, step {step}")
        if ckpt.get("world_size") != w.size:
            say(
                f"[yellow]note:[/] it ran on {ckpt.get('world_size')} process(es), now {w.size}: "
                "the data order and steps per epoch differ from an uninterrupted run"
            )
    elif resume:
        say(f"no checkpoint in {out}; starting from scratch")
    if w.is_main:
        with writing("the run's config", out / "config.yaml"):
            write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log = TrainLog(out / "log.csv", resume_step=step if resume else None, console=console)
    monitor = KnnMonitor(cfg, device) if cfg.eval.every and w.is_main else None

    # DDP wrappers average the gradients; EMA, checkpoints and evaluation use the bare modules
    encoder_ddp, predictor_ddp = (_ddp(net, device, w.size) for net in (encoder, predictor))
    trainable = [p for p in (*encoder.parameters(), *predictor.parameters()) if p.requires_grad]
    bf16 = cuda and opt.bf16
    last_epoch = min(opt.epochs, opt.stop_after or opt.epochs)
    say(
        f"pretraining {arch.name} (depth {arch.depth}, predictor {cfg.model.predictor_depth}×"
        f"{cfg.model.predictor_embed_dim}) on {len(dataset)} images, {w.size} process(es), "
        f"{iterations_per_epoch} steps/epoch, epochs {start_epoch + 1}–{last_epoch} of {opt.epochs}"
    )
    started = time.perf_counter() - elapsed
    for epoch in range(start_epoch, last_epoch):
        torch.manual_seed(mixed_seed(cfg.seed, w.rank, epoch))  # crops, worker seeds this epoch
        sampler.set_epoch(epoch)
        epoch_losses, window = [], []
        for itr, (images, _) in enumerate(loader):
            lr, wd = schedules.lr_at(step), schedules.wd_at(step)
            momentum = schedules.momentum_at(step)
            apply_schedules(optimizer, lr, wd)
            images = images.to(device, non_blocking=True)
            masks_enc, masks_pred = (
                [m.to(device, non_blocking=True) for m in group]
                for group in masks(len(images), step)
            )

            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                # targets: the target encoder's tokens, layer-normed again (no affine), per block
                with torch.no_grad():
                    h = target_encoder(images)
                    h = F.layer_norm(h, (h.size(-1),))
                    h = apply_masks(h, masks_pred)
                    h = repeat_interleave_batch(h, len(images), repeat=len(masks_enc))
                # predictions: encode the context block only, predict every target block
                z = encoder_ddp(images, masks_enc)
                z = predictor_ddp(z, masks_enc, masks_pred)
                loss = F.smooth_l1_loss(z, h)

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opt.clip_grad:
                torch.nn.utils.clip_grad_norm_(trainable, opt.clip_grad)
            optimizer.step()
            with torch.no_grad():  # target ← momentum·target + (1 − momentum)·context
                for t, c in zip(target_encoder.parameters(), encoder.parameters(), strict=True):
                    t.mul_(momentum).add_(c.detach(), alpha=1 - momentum)
            step += 1

            loss_value = _mean_over_ranks(loss.detach(), w.size)
            if not math.isfinite(loss_value):
                kept = f"the last good checkpoint is {latest}"
                if not latest.is_file():
                    kept = "no checkpoint was written yet"
                raise UserError(
                    f"loss is {loss_value} at step {step} (epoch {epoch + 1}); training stopped "
                    f"and {kept}: lower optimization.lr or set optimization.clip_grad"
                )
            epoch_losses.append(loss_value)
            window.append(loss_value)
            end_of_epoch = itr == iterations_per_epoch - 1
            if not (step % cfg.logging.log_every == 0 or end_of_epoch):
                continue

            # -- log (and at the end of an epoch: evaluate, checkpoint)
            knn = None
            evaluate = (
                end_of_epoch
                and cfg.eval.every
                and ((epoch + 1) % cfg.eval.every == 0 or epoch + 1 == opt.epochs)
            )
            if evaluate and monitor is not None:
                knn = monitor(target_encoder)
            if w.is_main:
                log.write(
                    step=step, epoch=epoch + 1, loss=sum(window) / len(window), lr=lr, wd=wd,
                    momentum=momentum, knn_top1=knn, time=time.perf_counter() - started,
                )  # fmt: skip
            window = []

        if w.is_main:
            payload = {
                "encoder": checkpoint.native_state(encoder),
                "predictor": checkpoint.native_state(predictor),
                "target_encoder": checkpoint.native_state(target_encoder),
                "opt": optimizer.state_dict(),
                "scaler": None,  # bf16 needs no loss scaling
                "epoch": epoch + 1,
                "loss": sum(epoch_losses) / len(epoch_losses),
                "batch_size": cfg.data.batch_size,
                "world_size": w.size,
                "lr": opt.lr,
                "ijepa_eval": {
                    "version": __version__,
                    "arch": arch.to_dict(),
                    "predictor": {
                        "depth": cfg.model.predictor_depth,
                        "embed_dim": cfg.model.predictor_embed_dim,
                    },
                    "config": cfg.to_dict(),
                    "step": step,
                    "sampler_epoch": epoch + 1,
                    "elapsed": time.perf_counter() - started,
                },
            }
            kept = (
                f"; the previous one (epoch {epoch}) is intact: free some space, then run again "
                "with --resume"
                if latest.is_file()
                else "; no checkpoint was written yet: free some space and run again"
            )
            checkpoint.save(latest, payload, kept=kept)
            if cfg.logging.keep_every and (epoch + 1) % cfg.logging.keep_every == 0:
                checkpoint.save(
                    out / f"ep{epoch + 1}.pth.tar",
                    payload,
                    kept=f"; {latest} (epoch {epoch + 1}) was written: free some space, then "
                    "run again with --resume",
                )
        w.barrier()

    if w.is_main and (out / "log.csv").is_file():
        with writing("the training curves", out / "curves.png"):
            plot_curves(out / "log.csv", out / "curves.png")
        say(f"done: {latest}, log {out / 'log.csv'}, curves {out / 'curves.png'}")
    return latest


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
