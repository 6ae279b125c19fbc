"""VTAB's two CLEVR labels, as pure functions of one scene record.

Taken from VTAB's ``task_adaptation/data/clevr.py``: ``count_all`` is the number of objects
minus 3 (scenes hold 3–10 objects: 8 classes); ``closest_object_distance`` takes the smallest
``pixel_coords[2]`` (the depth of an object's centre) and returns the largest ``i`` with
``thrs[i] < depth`` — so a depth exactly on a threshold falls in the lower class (8.0 → 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from ijepa_eval.data.json_file import shown
from ijepa_eval.errors import DataError

MIN_OBJECTS, MAX_OBJECTS = 3, 10
COUNT_CLASSES = [str(n) for n in range(MIN_OBJECTS, MAX_OBJECTS + 1)]

DISTANCE_THRESHOLDS = (0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0)
DISTANCE_CLASSES = [f"({lo:g}, {hi:g}]" for lo, hi in pairwise(DISTANCE_THRESHOLDS)]


def scene_name(scene: Mapping[str, Any]) -> str:
    """How messages call a scene: its image file name, else its index."""
    if "image_filename" in scene:
        return str(scene["image_filename"])
    return f"with image_index {scene.get('image_index', '?')}"


def _objects(scene: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    objects = scene.get("objects")
    if not isinstance(objects, list):
        raise DataError(f"scene {scene_name(scene)} has no 'objects' list")
    return objects


def count_label(scene: Mapping[str, Any]) -> int:
    """Number of objects − 3 (class 0 = 3 objects … class 7 = 10 objects)."""
    n = len(_objects(scene))
    if not MIN_OBJECTS <= n <= MAX_OBJECTS:
        raise DataError(
            f"scene {scene_name(scene)} has {n} objects; "
            f"the count task needs {MIN_OBJECTS}–{MAX_OBJECTS}"
        )
    return n - MIN_OBJECTS


def closest_depth(scene: Mapping[str, Any]) -> float:
    """The smallest ``pixel_coords[2]`` over the scene's objects."""
    objects = _objects(scene)
    if not objects:
        raise DataError(f"scene {scene_name(scene)} has no objects")
    return min(_depth(obj, scene) for obj in objects)


def _depth(obj: Any, scene: Mapping[str, Any]) -> float:
    """``pixel_coords[2]`` of one object; JSON numbers only (a string or ``true`` is no depth)."""
    coords = obj.get("pixel_coords") if isinstance(obj, dict) else None
    if (
        not isinstance(coords, list)
        or len(coords) < 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in coords[:3])
    ):
        raise DataError(
            f"scene {scene_name(scene)}: every object needs pixel_coords = [x, y, depth] "
            f"(numbers); found {shown(coords)}"
        )
    return float(coords[2])


def distance_label(scene: Mapping[str, Any]) -> int:
    """The largest i with DISTANCE_THRESHOLDS[i] < closest depth (6 classes)."""
    depth = closest_depth(scene)
    below = [i for i, t in enumerate(DISTANCE_THRESHOLDS) if t < depth]
    if not below or below[-1] >= len(DISTANCE_CLASSES):
        raise DataError(
            f"scene {scene_name(scene)}: closest depth {depth:g} is outside VTAB's range (0, 100]"
        )
    return below[-1]
