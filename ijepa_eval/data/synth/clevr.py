"""synth-clevr: CLEVR-like scenes written in the CLEVR_v1.0 layout, with depth maps beside them.

Scene sampling follows CLEVR's ``render_images.py``: 3–10 objects at x, y ∈ [-3, 3], shape,
colour, size, material and rotation drawn uniformly, CLEVR's radii (cubes shrunk by √2), at least
0.25 between objects, every object visible, camera jittered by ±0.5 around CLEVR's position.
``pixel_coords`` are CLEVR's ``get_camera_coords``: rounded pixel x, y (origin top-left) and the
camera-space depth of the object's centre, which VTAB's ``closest_object_distance`` bins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ijepa_eval.atomic import write_json
from ijepa_eval.data.synth import render
from ijepa_eval.data.synth._common import (
    check_args,
    claim,
    default_workers,
    link_once,
    png_bytes,
    refuse_extra,
    run_jobs,
    write_once,
)
from ijepa_eval.errors import DataError

VERSION = 1  # bump when the pixels or scenes change for a given seed
SPLITS = {"train": 0, "val": 1}

# CLEVR's data/properties.json
COLORS = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SHAPES = {"cube": render.CUBE, "sphere": render.SPHERE, "cylinder": render.CYLINDER}
SIZES = {"large": 0.7, "small": 0.35}
MATERIALS = ("rubber", "metal")

# CLEVR's base_scene.blend camera, its --camera_jitter and --min_dist, and its lens (35 mm on a
# 32 mm sensor: a 49.1° field of view across the image width).
CAMERA = (7.48, -6.51, 5.34)
CAMERA_JITTER = 0.5
FOV_DEG = 49.13
MIN_DIST = 0.25
MIN_VISIBLE = 200 / (480 * 320)  # CLEVR's min_pixels_per_object, as a fraction of the image
MAX_RETRIES = 50  # placement tries per object before the whole scene is redrawn
GROUND_RADIUS = 40.0  # beyond it: background with no depth (0 in the depth map)
LIGHT = render.Light(direction=np.array([1.0, 0.45, 1.5]))


@dataclass(frozen=True)
class Scene:
    """A sampled scene: what the JSON describes plus what rendering needs."""

    objects: list[dict[str, Any]]
    solids: render.Objects
    camera: render.Camera
    hits: render.Hits


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One independent stream per scene, so any scene can be made alone (chunks, resumes)."""
    return np.random.default_rng([seed, SPLITS[split], index])


def _place(rng: np.random.Generator, n: int) -> list[dict[str, Any]] | None:
    """Draw ``n`` non-touching objects as CLEVR does, or None when one cannot be placed."""
    placed: list[dict[str, Any]] = []
    for _ in range(n):
        size = rng.choice(list(SIZES))
        shape = rng.choice(list(SHAPES))
        half = SIZES[size] / np.sqrt(2) if shape == "cube" else SIZES[size]
        reach = SIZES[size]  # footprint radius: a cube's corner reaches its unshrunk size
        for _ in range(MAX_RETRIES):
            x, y = rng.uniform(-3, 3, size=2)
            if all(
                np.hypot(x - o["x"], y - o["y"]) - reach - o["reach"] >= MIN_DIST for o in placed
            ):
                break
        else:
            return None
        placed.append(
            {
                "shape": str(shape),
                "size": str(size),
                "color": str(rng.choice(list(COLORS))),
                "material": str(rng.choice(MATERIALS)),
                "rotation": float(rng.uniform(0, 360)),
                "x": float(x),
                "y": float(y),
                "half": float(half),
                "reach": float(reach),
            }
        )
    return placed


def _solids(placed: list[dict[str, Any]]) -> render.Objects:
    return render.Objects(
        shape=np.array([SHAPES[o["shape"]] for o in placed]),
        xy=np.array([[o["x"], o["y"]] for o in placed]),
        half=np.array([o["half"] for o in placed]),
        theta=np.radians([o["rotation"] for o in placed]),
        albedo=np.array([COLORS[o["color"]] for o in placed]) / 255.0,
        metal=np.array([o["material"] == "metal" for o in placed]),
    )


def sample_scene(seed: int, split: str, index: int, size: int) -> Scene:
    """Draw scene ``index`` of ``split``; redraw until every object shows enough pixels."""
    rng = scene_rng(seed, split, index)
    n = int(rng.integers(3, 11))
    min_px = max(1, round(MIN_VISIBLE * size * size))
    while True:
        placed = _place(rng, n)
        if placed is None:
            continue
        cam_pos = np.add(CAMERA, rng.uniform(-CAMERA_JITTER, CAMERA_JITTER, size=3))
        camera = render.Camera.look_at(cam_pos, fov_deg=FOV_DEG)
        solids = _solids(placed)
        hits = render.trace(solids, camera, size, GROUND_RADIUS)
        if np.bincount(hits.ids[hits.ids >= 0], minlength=n).min() >= min_px:
            break
    px, py, depth = camera.project(solids.centre, size)
    objects = [
        {
            "shape": o["shape"],
            "color": o["color"],
            "size": o["size"],
            "material": o["material"],
            "3d_coords": [round(o["x"], 6), round(o["y"], 6), round(o["half"], 6)],
            "rotation": round(o["rotation"], 6),
            "pixel_coords": [int(px[k]), int(py[k]), round(float(depth[k]), 6)],
        }
        for k, o in enumerate(placed)
    ]
    return Scene(objects, solids, camera, hits)


def render_scene(scene: Scene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (size, size, 3) and depth in millimetres, uint16 (size, size), 0 = no surface."""
    rgb = render.shade(scene.solids, scene.camera, scene.hits, LIGHT)
    rgb = np.round(rgb * 255).astype(np.uint8).reshape(size, size, 3)
    mm = np.round(scene.hits.depth * 1000)
    mm = np.where(mm > np.iinfo(np.uint16).max, 0, mm).astype(np.uint16).reshape(size, size)
    return rgb, mm


def image_name(split: str, index: int) -> str:
    return f"CLEVR_{split}_{index:06d}.png"


def _job(args: tuple[Path, int, str, int, int]) -> dict[str, Any]:
    """Make one scene, write its three PNGs unless a previous run did; return its JSON entry."""
    out, seed, split, index, size = args
    scene = sample_scene(seed, split, index, size)
    name = image_name(split, index)
    paths = [
        out / "images" / split / name,
        out / "depth" / split / "rgb" / name,
        out / "depth" / split / "depth" / name,
    ]
    if not all(p.exists() for p in paths):
        rgb, mm = render_scene(scene, size)
        write_once(paths[0], png_bytes(rgb))
        link_once(paths[0], paths[1])
        write_once(paths[2], png_bytes(mm))
    return {"image_index": index, "image_filename": name, "split": split, "objects": scene.objects}


def generate_clevr(
    out: str | os.PathLike[str],
    *,
    train: int = 2000,
    val: int = 500,
    size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write ``train`` + ``val`` synthetic CLEVR scenes at ``size``² pixels under ``out``.

    Layout: ``images/<split>/CLEVR_<split>_NNNNNN.png``, ``scenes/CLEVR_<split>_scenes.json``
    (written last, once all images exist) and ``depth/<split>/{rgb,depth}/…png`` (16-bit
    camera-space depth in mm). Same seed → byte-identical files; a rerun resumes.
    """
    out = check_args(out, size, seed, {"train": train, "val": val})
    if train + val == 0:
        raise DataError("--train and --val are both 0; ask for at least one scene.")
    params = {"generator": "ijepa-eval synth-clevr", "version": VERSION, "seed": seed, "size": size}
    claim(out, params)
    counts = {s: n for s, n in (("train", train), ("val", val)) if n}
    for split, n in (("train", train), ("val", val)):
        expected = {image_name(split, i) for i in range(n)}
        refuse_extra(out / "images" / split, expected, f"--{split} {n}")
    jobs = [(out, seed, s, i, size) for s, n in counts.items() for i in range(n)]
    workers = default_workers(len(jobs)) if workers is None else workers
    entries = list(run_jobs(_job, jobs, len(jobs), workers, "synth-clevr", progress))
    start = 0
    for split, n in counts.items():
        info = {**params, "split": split}
        scenes = entries[start : start + n]
        start += n
        write_json(out / "scenes" / f"CLEVR_{split}_scenes.json", {"info": info, "scenes": scenes})
    return out
