"""Low-shot subsets: SimCLR subset files and seeded k-shot draws, exact and reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ijepa_eval.data import apply_subset_file, draw_k_shot, load_dataset, save_file_list
from ijepa_eval.errors import DataError

SYNSETS = ["n01440764", "n01443537", "n01484850"]


@pytest.fixture
def imagenet_like(tmp_path: Path) -> Path:
    """A tiny ImageNet-style train split: 3 synsets × 10 images named like the real ones."""
    root = tmp_path / "imagenet"
    img = Image.new("RGB", (2, 2), (1, 2, 3))
    for s, synset in enumerate(SYNSETS):
        (root / "train" / synset).mkdir(parents=True)
        for i in range(10):
            img.save(root / "train" / synset / f"{synset}_{1000 + 37 * i + s}.JPEG", format="PNG")
    return root


def test_subset_file_keeps_exactly_the_named_images(imagenet_like: Path, tmp_path: Path) -> None:
    names = [f"{SYNSETS[0]}_1037.JPEG", f"{SYNSETS[0]}_1000.JPEG", f"{SYNSETS[2]}_1113.JPEG"]
    subset = tmp_path / "1percent.txt"
    subset.write_text("\n".join(names) + "\n\n")
    ds = load_dataset("imagefolder", imagenet_like, "train", subset_file=subset)
    assert ds.ids() == [
        f"{SYNSETS[0]}/{SYNSETS[0]}_1000.JPEG",
        f"{SYNSETS[0]}/{SYNSETS[0]}_1037.JPEG",
        f"{SYNSETS[2]}/{SYNSETS[2]}_1113.JPEG",
    ]
    assert ds.label_histogram() == {SYNSETS[0]: 2, SYNSETS[1]: 0, SYNSETS[2]: 1}
    assert ds.classes == SYNSETS  # the label space is the full split's
    assert ds.selection == {"kind": "subset_file", "file": str(subset), "size": 3}


def test_subset_file_naming_missing_images(imagenet_like: Path, tmp_path: Path) -> None:
    subset = tmp_path / "1percent.txt"
    lines = [f"{SYNSETS[1]}_1001.JPEG"] + [f"{SYNSETS[1]}_9{i:03d}.JPEG" for i in range(7)]
    subset.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"names 7 image\(s\) not in .*n01443537_9000\.JPEG.*…"):
        apply_subset_file(load_dataset("imagefolder", imagenet_like, "train"), subset)


def test_subset_line_without_synset(imagenet_like: Path, tmp_path: Path) -> None:
    subset = tmp_path / "bad.txt"
    subset.write_text("picture.JPEG\n")
    with pytest.raises(DataError, match=r"bad\.txt:1: 'picture\.JPEG'"):
        load_dataset("imagefolder", imagenet_like, "train", subset_file=subset)


# Pinned draws (PCG64([seed, class]) over sorted ids): the same on every machine and run.
EXPECTED_2_SHOT_SEED_0 = [
    "n01440764/n01440764_1148.JPEG",
    "n01440764/n01440764_1222.JPEG",
    "n01443537/n01443537_1038.JPEG",
    "n01443537/n01443537_1334.JPEG",
    "n01484850/n01484850_1076.JPEG",
    "n01484850/n01484850_1298.JPEG",
]


def test_k_shot_is_exact_and_pinned(imagenet_like: Path) -> None:
    ds = load_dataset("imagefolder", imagenet_like, "train", shots=2, seed=0)
    assert ds.ids() == EXPECTED_2_SHOT_SEED_0
    for k in (1, 2, 5):
        for seed in (0, 1, 2):
            draw = load_dataset("imagefolder", imagenet_like, "train", shots=k, seed=seed)
            assert set(draw.label_histogram().values()) == {k}
            again = draw_k_shot(load_dataset("imagefolder", imagenet_like, "train"), k, seed)
            assert again.ids() == draw.ids()
    seeds = {tuple(load_dataset("imagefolder", imagenet_like, "train", shots=2, seed=s).ids())
             for s in range(3)}  # fmt: skip
    assert len(seeds) == 3


def test_k_shot_needs_a_seed_and_enough_images(imagenet_like: Path) -> None:
    with pytest.raises(DataError, match="explicit seed"):
        load_dataset("imagefolder", imagenet_like, "train", shots=1)
    with pytest.raises(DataError, match="has 10 image.* fewer than the 11 shots"):
        load_dataset("imagefolder", imagenet_like, "train", shots=11, seed=0)


def test_saved_file_list_round_trips(imagenet_like: Path, tmp_path: Path) -> None:
    draw = load_dataset("imagefolder", imagenet_like, "train", shots=2, seed=0)
    listing = save_file_list(draw, tmp_path / "run" / "train_files.txt")
    assert listing.read_text().splitlines() == EXPECTED_2_SHOT_SEED_0
    again = load_dataset("imagefolder", imagenet_like, "train", subset_file=listing)
    assert again.ids() == draw.ids() and again.targets == draw.targets
