"""Extraction throughput: ijepa-eval vs transformers' IJepaModel, same config, images and dtype.

    python benchmarks/bench_extract.py [--arch base] [--images 64] [--batch 16] [--res 224]

Random-init weights (throughput does not depend on their values) saved in the native layout and
converted to HF with `ijepa-eval convert`, so both sides run identical weights. Measured, in one
run: model-only forward (pre-batched tensors) in fp32 and bf16 autocast, for ours and for
transformers (SDPA attention); end-to-end `ie.extract` from a folder of JPEGs; and a repeat of
that extraction served from the cache. Prints a Markdown block for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
import transformers
from PIL import Image

import ijepa_eval as ie
from ijepa_eval.models.arch import WIDTHS, VitArch
from ijepa_eval.models.convert import save_hf
from ijepa_eval.models.vit import Encoder

DEPTH = {"tiny": 12, "small": 12, "base": 12, "large": 24, "huge": 32}


def make_checkpoint(arch_name: str, res: int, patch: int, out: Path) -> Path:
    width = next(w for w, (n, _) in WIDTHS.items() if n == arch_name)
    arch = VitArch(
        embed_dim=width,
        depth=DEPTH[arch_name],
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


def timed_pair(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of each, alternating runs so that background load hits both alike."""
    first(), second()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="base", choices=list(DEPTH))
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    os.environ["IJEPA_EVAL_CACHE"] = str(work / "cache")
    ckpt = make_checkpoint(args.arch, args.res, args.patch, work / "model.pth.tar")
    ours = ie.load_encoder(ckpt)
    save_hf(ours, work / "hf")
    theirs = transformers.IJepaModel.from_pretrained(work / "hf", attn_implementation="sdpa").eval()

    x = torch.randn(args.batch, 3, args.res, args.res)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):

        def run_ours(dtype=dtype):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                ours(x)

        def run_theirs(dtype=dtype):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                theirs(pixel_values=x)

        t_ours, t_theirs = timed_pair(run_ours, run_theirs, args.repeats)
        rows.append((f"model-only, {str(dtype)[6:]}", args.batch / t_ours, args.batch / t_theirs))

    rng = np.random.default_rng(0)
    folder = work / "images" / "train" / "cls"
    folder.mkdir(parents=True)
    for i in range(args.images):
        Image.fromarray(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)).save(
            folder / f"{i}.jpg", quality=90
        )
    ds = ie.load_dataset("imagefolder", work / "images", "train")
    start = time.perf_counter()
    ie.extract(ours, ds, batch_size=args.batch, progress=False)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    hit = ie.extract(ours, ds, batch_size=args.batch, progress=False)
    warm = time.perf_counter() - start
    assert hit.hit

    print(f"### Extraction, ViT-{args.arch}/{args.patch} at {args.res}px, random weights, CPU")
    print()
    print(
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"torch {torch.__version__}, timm {timm.__version__}, "
        f"transformers {transformers.__version__}"
    )
    print(
        f"- command: `python benchmarks/bench_extract.py --arch {args.arch} --patch {args.patch} "
        f"--res {args.res} --images {args.images} --batch {args.batch} --repeats {args.repeats}`"
    )
    print()
    print("| measurement | ijepa-eval img/s | transformers IJepaModel img/s | ratio |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name}, batch {args.batch} | {a:.2f} | {b:.2f} | {a / b:.2f}× |")
    print()
    print(
        f"- end to end from {args.images} JPEGs (decode, resize, crop, fp32 forward, fp16 store): "
        f"{args.images / cold:.2f} img/s ({cold:.2f} s)"
    )
    print(
        f"- the same extraction again, served from the cache: {warm * 1000:.1f} ms = "
        f"{100 * warm / cold:.2f}% of the first run ({cold / warm:,.0f}× faster)"
    )


if __name__ == "__main__":
    main()
