"""synth-classes: an ImageFolder of procedurally drawn classes for offline classification probes.

A class is a (shape, texture, palette) triple; each image draws position, scale, rotation, the
texture's frequency and phase, the exact colours and a noisy gradient background at random, so
a probe has to learn the class's statistics rather than memorise a template.
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np

from ijepa_eval.data.synth._common import (
    check_args,
    claim,
    default_workers,
    png_bytes,
    refuse_extra,
    run_jobs,
    write_once,
)
from ijepa_eval.errors import DataError

VERSION = 1  # bump when the pixels change for a given seed
SPLITS = {"train": 0, "val": 1}
SHAPES = ("disc", "square", "triangle", "ring", "star", "cross")
TEXTURES = ("solid", "stripes", "checker", "dots")
PALETTES = {"warm": (-0.05, 0.12), "green": (0.22, 0.4), "cool": (0.5, 0.7)}  # hue ranges
MAX_CLASSES = len(SHAPES) * len(TEXTURES) * len(PALETTES)


def class_spec(k: int) -> tuple[str, str, str]:
    """Class ``k``'s (shape, texture, palette); neighbouring classes differ in shape first."""
    return (
        SHAPES[k % len(SHAPES)],
        TEXTURES[(k // len(SHAPES)) % len(TEXTURES)],
        list(PALETTES)[k // (len(SHAPES) * len(TEXTURES))],
    )


def class_names(classes: int) -> list[str]:
    """Folder names whose sorted order is the class index (``class_00_disc_solid_warm``)."""
    width = max(2, len(str(classes - 1)))
    return [f"class_{k:0{width}d}_{'_'.join(class_spec(k))}" for k in range(classes)]


def _mask(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inside-test of a unit-sized shape in its own frame."""
    r = np.hypot(x, y)
    if shape == "disc":
        return r <= 1.0
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= 0.8
    if shape == "triangle":
        angles = np.radians([90.0, 210.0, 330.0])
        return np.all([x * np.cos(a) + y * np.sin(a) <= 0.5 for a in angles], axis=0)
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "star":
        return r <= 0.6 + 0.35 * np.cos(5 * np.arctan2(y, x))
    return ((np.abs(x) <= 0.3) & (np.abs(y) <= 0.9)) | ((np.abs(y) <= 0.3) & (np.abs(x) <= 0.9))


def _texture(texture: str, x: np.ndarray, y: np.ndarray, freq: float, phase: np.ndarray):
    """1 where the texture takes the first colour, 0 where the second."""
    if texture == "solid":
        return np.ones_like(x, dtype=bool)
    if texture == "stripes":
        return np.sin(2 * np.pi * freq * x + phase[0]) > 0
    if texture == "checker":
        return np.sin(np.pi * freq * x + phase[0]) * np.sin(np.pi * freq * y + phase[1]) > 0
    fx, fy = (freq * x / 2 + phase[0]) % 1 - 0.5, (freq * y / 2 + phase[1]) % 1 - 0.5
    return fx * fx + fy * fy < 0.09


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def draw(k: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """One image of class ``k`` (uint8, size × size × 3), drawn at 2× and box-filtered."""
    shape, texture, palette = class_spec(k)
    n = 2 * size
    s = (np.arange(n) + 0.5) / n * 2 - 1
    gx, gy = np.meshgrid(s, -s)
    # background: a low-saturation gradient of two random colours at a random angle
    bg0, bg1 = (_hsv(rng.uniform(), rng.uniform(0, 0.3), rng.uniform(0.3, 0.9)) for _ in range(2))
    ang = rng.uniform(0, 2 * np.pi)
    w = ((gx * np.cos(ang) + gy * np.sin(ang)) + 1.5) / 3
    img = bg0 * (1 - w[..., None]) + bg1 * w[..., None]
    # the shape, in its own rotated and scaled frame
    cx, cy = rng.uniform(-0.35, 0.35, size=2)
    scale, rot = rng.uniform(0.35, 0.6), rng.uniform(0, 2 * np.pi)
    dx, dy = (gx - cx) / scale, (gy - cy) / scale
    lx, ly = dx * np.cos(rot) + dy * np.sin(rot), -dx * np.sin(rot) + dy * np.cos(rot)
    lo, hi = PALETTES[palette]
    hue = rng.uniform(lo, hi)
    fg0 = _hsv(hue, rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0))
    fg1 = _hsv(hue + rng.uniform(-0.04, 0.04), rng.uniform(0.5, 1.0), rng.uniform(0.15, 0.45))
    tex = _texture(texture, lx, ly, rng.uniform(2.5, 4.5), rng.uniform(0, 2 * np.pi, size=2))
    fg = np.where(tex[..., None], fg0, fg1)
    img = np.where(_mask(shape, lx, ly)[..., None], fg, img)
    img = img.reshape(size, 2, size, 2, 3).mean((1, 3))
    img += rng.normal(0, 0.03, size=img.shape)
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def image_name(index: int) -> str:
    return f"img_{index:05d}.png"


def _job(args: tuple[Path, int, str, int, int, int, str]) -> None:
    """Draw and write one image unless a previous run did."""
    out, seed, split, k, index, size, name = args
    path = out / split / name / image_name(index)
    if not path.exists():
        rng = np.random.default_rng([seed, SPLITS[split], k, index])
        write_once(path, png_bytes(draw(k, rng, size)))


def generate_classes(
    out: str | os.PathLike[str],
    *,
    classes: int = 10,
    per_class: int = 50,
    size: int = 64,
    seed: int = 0,
    val_per_class: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write ``out/{train,val}/<class>/img_NNNNN.png``: ``classes`` × ``per_class`` training images.

    ``val_per_class`` defaults to a quarter of ``per_class`` (at least 1). Same seed →
    byte-identical files; a rerun resumes, keeping what is already written.
    """
    val = max(1, per_class // 4) if val_per_class is None else val_per_class
    out = check_args(out, size, seed, {"per-class": per_class, "val-per-class": val})
    if not 2 <= classes <= MAX_CLASSES:
        raise DataError(f"--classes {classes} is out of range; use 2 to {MAX_CLASSES}.")
    if per_class == 0:
        raise DataError("--per-class 0 leaves the training split empty; use 1 or more.")
    params = {
        "generator": "ijepa-eval synth-classes",
        "version": VERSION,
        "seed": seed,
        "size": size,
        "classes": classes,
    }
    claim(out, params)
    names = class_names(classes)
    for split, n, option in (("train", per_class, "--per-class"), ("val", val, "--val-per-class")):
        expected = {image_name(i) for i in range(n)}
        for name in names:
            refuse_extra(out / split / name, expected, f"{option} {n}")
    jobs = [
        (out, seed, split, k, i, size, names[k])
        for split, n in (("train", per_class), ("val", val))
        for k in range(classes)
        for i in range(n)
    ]
    workers = default_workers(len(jobs)) if workers is None else workers
    for _ in run_jobs(_job, jobs, len(jobs), workers, "synth-classes", progress):
        pass
    return out
