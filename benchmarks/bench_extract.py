"""Extraction throughput against transformers and timm: same config, weights, images and dtype.

    python benchmarks/bench_extract.py [--arch base] [--patch 16] [--res 224] [--images 64]
                                       [--batch 16] [--dtypes fp32,bf16] [--e2e-dtype bf16]

Random-init weights (throughput does not depend on their values), saved in the native layout
and converted to HF with `save_hf`, so all three run identical weights:

- model-only, on pre-batched tensors: ours (`forward_blocks` + mean pool, the extraction path),
  transformers' `IJepaModel` (SDPA attention) and a plain timm `VisionTransformer` of the same
  config (`vit_huge_patch14_gap_224` and friends), in each dtype of --dtypes (bf16 = autocast,
  bf16-weights = each model cast to bf16, no autocast);
- end to end from a folder of JPEGs (decode, resize, crop, forward, pooled output): `ie.extract`
  (cache refreshed each time), transformers' `pipeline("image-feature-extraction")` with
  `return_tensors=True`, and timm's own transform in a DataLoader with the same worker count.
  The pipeline's `dtype=torch.bfloat16` casts the whole model, so `--e2e-dtype bf16-weights`
  (or fp32) compares it at the same numerics; with `bf16` ours runs autocast, more precise;
- that extraction again, served from the cache.

Runs alternate and medians are taken, so background load falls on every side alike. On a machine
with a GPU everything runs there (timed to `cuda.synchronize`). Prints a Markdown block for
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import timm
import torch
import transformers
from PIL import Image
from timm.models.vision_transformer import VisionTransformer
from torchvision.datasets import ImageFolder

import ijepa_eval as ie
from ijepa_eval.features.extract import cast_copy
from ijepa_eval.models.arch import WIDTHS, VitArch
from ijepa_eval.models.convert import save_hf
from ijepa_eval.models.vit import Encoder
from ijepa_eval.results.stats import ItemScores, interval

DEPTH = {"tiny": 12, "small": 12, "base": 12, "large": 24, "huge": 32}


def make_checkpoint(
    arch_name: str, res: int, patch: int, out: Path, depth: int | None = None
) -> Path:
    """A native checkpoint of random weights (`depth` blocks, by default the arch's own)."""
    width = next(w for w, (n, _) in WIDTHS.items() if n == arch_name)
    arch = VitArch(
        embed_dim=width,
        depth=depth or DEPTH[arch_name],
        num_heads=WIDTHS[width][1],
        mlp_hidden=4 * width,
        patch_size=patch,
        grid=res // patch,
    )
    torch.manual_seed(0)
    enc = Encoder(arch)
    torch.nn.init.trunc_normal_(enc.pos_embed, std=0.02)
    for m in enc.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.trunc_normal_(m.weight, std=0.02)
    state = {f"module.{k}": v for k, v in enc.state_dict().items()}
    torch.save({"target_encoder": state, "encoder": state, "epoch": 0}, out)
    return out


def timed_runs(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run, after a warm-up; runs alternate, round by round, and every other
    round runs them in reverse order, so that going first or last favours none of them."""
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats):
        order = list(fns.items())
        for name, fn in order if round_ % 2 == 0 else reversed(order):
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # GPU work is asynchronous: time it to the end
            times[name].append(time.perf_counter() - start)
    return times


def timed_all(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each, alternating runs so that background load hits all alike."""
    return {name: float(np.median(t)) for name, t in timed_runs(fns, repeats).items()}


def round_ratios(times: dict[str, list[float]], slower: str, faster: str = "ours") -> str:
    """``times[slower] / times[faster]`` within each round (runs seconds apart, so a drift in
    the machine's speed cancels): their geometric mean with its 95% bootstrap interval over
    rounds (`results.stats.interval` of the log ratios), and their range. Only an interval
    whose low end is above 1 shows a lead."""
    logs = ItemScores(np.log([a / b for a, b in zip(times[slower], times[faster], strict=True)]))
    low, high = np.exp(interval(logs))
    return (
        f"{np.exp(logs.estimate):.3f}× (95% interval {low:.3f}–{high:.3f} over {len(logs)} "
        f"rounds; rounds {np.exp(logs.values.min()):.2f}–{np.exp(logs.values.max()):.2f})"
    )


def plain_timm(ours: Encoder, res: int) -> torch.nn.Module:
    """timm's own VisionTransformer in I-JEPA's configuration, holding the same weights."""
    a = ours.arch
    name = f"vit_{WIDTHS[a.embed_dim][0]}_patch{a.patch_size}_gap_224"
    kwargs = {"num_classes": 0, "img_size": res}
    if name in timm.list_models():
        model = timm.create_model(name, pretrained=False, **kwargs)
    else:  # the same configuration, built from the class the registered names use
        model = VisionTransformer(
            patch_size=a.patch_size,
            embed_dim=a.embed_dim,
            depth=a.depth,
            num_heads=a.num_heads,
            class_token=False,
            global_pool="avg",
            fc_norm=False,
            **kwargs,
        )
    model.load_state_dict(ours.state_dict())
    return model.eval()


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "bf16-weights": torch.bfloat16}


def autocast(name: str):
    """Autocast for ``bf16``; nothing for ``fp32`` and ``bf16-weights`` (the weights are cast)."""
    return torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=name == "bf16")


def numerics(model: torch.nn.Module, name: str) -> tuple[torch.nn.Module, torch.dtype]:
    """The model to run under ``name`` and the dtype its inputs take."""
    if name == "bf16-weights":
        return cast_copy(model, torch.bfloat16), torch.bfloat16
    return model, torch.float32


def jpeg_folder(root: Path, images: int) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "train" / "cls"
    folder.mkdir(parents=True)
    for i in range(images):
        Image.fromarray(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)).save(
            folder / f"{i:05d}.jpg", quality=90
        )
    return root


def timm_end_to_end(model: torch.nn.Module, root: Path, batch: int, workers: int, name: str):
    """What a timm user writes: the model's data config, its transform, a DataLoader."""
    size = (3, *model.patch_embed.img_size)
    model, dtype = numerics(model, name)
    config = timm.data.resolve_data_config({"input_size": size}, model=model)
    dataset = ImageFolder(root / "train", transform=timm.data.create_transform(**config))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, num_workers=workers, pin_memory=DEVICE == "cuda"
    )
    with autocast(name):
        return torch.cat([model(x.to(DEVICE, dtype, non_blocking=True)).float() for x, _ in loader])


def random_encoder(
    arch_name: str, res: int, patch: int, work: Path, depth: int | None = None
) -> Encoder:
    """Ours with random weights, loaded from a native checkpoint in `work` and also saved there
    as `work/hf` (`save_hf`), so that transformers loads the very same weights."""
    ckpt = make_checkpoint(arch_name, res, patch, work / "model.pth.tar", depth)
    ours = ie.load_encoder(ckpt)
    save_hf(ours, work / "hf")
    return ours


def peers(
    ours: Encoder, hf_dir: Path, res: int
) -> tuple[transformers.IJepaModel, VisionTransformer]:
    """transformers' `IJepaModel` (SDPA attention) and timm's own ViT with our weights (CPU)."""
    theirs = transformers.IJepaModel.from_pretrained(hf_dir, attn_implementation="sdpa")
    return theirs.eval(), plain_timm(ours, res)


def model_only_runs(
    ours: Encoder, theirs: torch.nn.Module, plain: torch.nn.Module, x: torch.Tensor, name: str
) -> dict[str, Callable[[], object]]:
    """One forward of each on the pre-batched `x`: ours as extraction runs it (`forward_blocks`
    + mean pool), transformers' last hidden state pooled, timm's pooled forward."""
    (ours, dtype), (theirs, _), (plain, _) = (numerics(m, name) for m in (ours, theirs, plain))
    x = x.to(dtype)

    def run_ours():
        with autocast(name):
            ours.forward_blocks(x, [-1])[0].mean(1)

    def run_hf():
        with autocast(name):
            theirs(pixel_values=x).last_hidden_state.mean(1)

    def run_timm():
        with autocast(name):
            plain(x)

    return {"ours": run_ours, "hf": run_hf, "timm": run_timm}


def end_to_end_runs(
    ours: Encoder,
    root: Path,
    files: list[str],
    hf_dir: Path,
    batch: int,
    dtype_name: str,
    workers: int,
    plain: torch.nn.Module | None = None,
) -> dict[str, Callable[[], object]]:
    """From JPEG files to pooled features: `ie.extract` over the image folder `root` (cache
    refreshed each time), `pipeline("image-feature-extraction")` over `files` and, given
    `plain`, timm's transform in a DataLoader over `root`."""
    ds = ie.load_dataset("imagefolder", root, "train")
    pipe = transformers.pipeline(
        "image-feature-extraction", model=str(hf_dir), dtype=DTYPES[dtype_name], device=DEVICE
    )

    def run_ours():
        ie.extract(
            ours,
            ds,
            batch_size=batch,
            compute_dtype=dtype_name,
            refresh=True,
            workers=workers,
            progress=False,
        )

    def run_pipeline():
        pipe(files, batch_size=batch, return_tensors=True)

    runs = {"ours": run_ours, "pipeline": run_pipeline}
    if plain is not None:
        runs["timm"] = lambda: timm_end_to_end(plain, root, batch, workers, dtype_name)
    return runs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="base", choices=list(DEPTH))
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--images", type=int, default=64, help="JPEGs end to end (0: skip)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--dtypes", default="fp32,bf16", help="model-only: fp32, bf16, bf16-weights ('': none)"
    )
    p.add_argument("--e2e-dtype", default="bf16", choices=list(DTYPES))
    p.add_argument("--workers", type=int, default=None, help="loader workers (ie.extract's)")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    os.environ["IJEPA_EVAL_CACHE"] = str(work / "cache")
    ours = random_encoder(args.arch, args.res, args.patch, work)
    theirs, plain = peers(ours, work / "hf", args.res)
    theirs, plain, ours = theirs.to(DEVICE), plain.to(DEVICE), ours.to(DEVICE)

    x = torch.randn(args.batch, 3, args.res, args.res, device=DEVICE)
    model_rows = []
    for name in filter(None, args.dtypes.split(",")):
        t = timed_all(model_only_runs(ours, theirs, plain, x, name), args.repeats)
        model_rows.append((f"model-only, {name}, batch {args.batch}", t))

    e2e = None
    if args.images:
        root = jpeg_folder(work / "images", args.images)
        files = sorted(str(f) for f in (root / "train" / "cls").iterdir())
        workers = min(os.cpu_count() or 1, 8) if args.workers is None else args.workers
        runs = end_to_end_runs(
            ours, root, files, work / "hf", args.batch, args.e2e_dtype, workers, plain
        )
        rounds = timed_runs(runs, args.repeats)
        t = {name: float(np.median(seconds)) for name, seconds in rounds.items()}
        ds = ie.load_dataset("imagefolder", root, "train")
        start = time.perf_counter()
        hit = ie.extract(
            ours, ds, batch_size=args.batch, compute_dtype=args.e2e_dtype, progress=False
        )
        warm = time.perf_counter() - start
        assert hit.hit
        e2e = (t, rounds, warm, workers)

    where = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU"
    a = ours.arch
    gflop = 2 * sum(p.numel() for p in ours.blocks.parameters()) * a.grid**2 / 1e9
    print(
        f"### Extraction, ViT-{args.arch}/{args.patch} at {args.res}px "
        f"(~{gflop:.0f} GFLOP/img in the block GEMMs), random weights, {where}"
    )
    print()
    print(
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, timm "
        f"{timm.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"- command: `python benchmarks/bench_extract.py --arch {args.arch} --patch {args.patch} "
        f"--res {args.res} --images {args.images} --batch {args.batch} --repeats "
        f"{args.repeats} --dtypes {shlex.quote(args.dtypes)} --e2e-dtype {args.e2e_dtype}"
        f"{'' if args.workers is None else f' --workers {args.workers}'}`; medians of "
        f"{args.repeats} alternating runs"
    )
    print()
    print(
        "| measurement | ijepa-eval img/s | transformers img/s | timm img/s "
        "| ours / transformers | ours / timm |"
    )
    print("|---|---|---|---|---|---|")
    n = args.batch
    for name, t in model_rows:
        print(
            f"| {name} | {n / t['ours']:.2f} | {n / t['hf']:.2f} (`IJepaModel`, SDPA) | "
            f"{n / t['timm']:.2f} | {t['hf'] / t['ours']:.2f}× | {t['timm'] / t['ours']:.2f}× |"
        )
    if e2e:
        t, rounds, warm, workers = e2e
        n = args.images
        print(
            f"| end to end, {n} JPEGs, {args.e2e_dtype}, {workers} loader workers | "
            f"{n / t['ours']:.2f} (`ie.extract`) | {n / t['pipeline']:.2f} (`pipeline`) | "
            f"{n / t['timm']:.2f} (transform + DataLoader) | {t['pipeline'] / t['ours']:.2f}× | "
            f"{t['timm'] / t['ours']:.2f}× |"
        )
        print()
        print(
            f"- end to end, ours / pipeline within each round: {round_ratios(rounds, 'pipeline')}"
            f"; ours / timm: {round_ratios(rounds, 'timm')}"
        )
        print(
            f"- the same extraction again, served from the cache: {warm * 1000:.1f} ms = "
            f"{100 * warm / t['ours']:.2f}% of an extraction ({t['ours'] / warm:,.0f}× faster)"
        )


if __name__ == "__main__":
    main()
