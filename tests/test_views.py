"""Training augmentation as cached views (a task's ``views:``): each view of every training image
is extracted once into the cache, and the linear probe draws one view per image per step."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ijepa_eval as ie
from ijepa_eval.data.synth.classes import generate_classes
from ijepa_eval.errors import UserError
from ijepa_eval.preprocess import Preprocess
from ijepa_eval.probes.base import Part, ProbeInputs
from ijepa_eval.probes.linear import LinearGridConfig, LinearProbe, fit_linear, linear_grid
from ijepa_eval.probes.split import stratified_split
from ijepa_eval.tasks import get_task
from ijepa_eval.tasks.pipeline import prepare, representations, task_encoder
from ijepa_eval.tasks.spec import ViewsSpec, parse_views

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = {"min_steps": 60, "lrs": [0.001, 0.01, 0.1], "weight_decays": [0.0]}


def _image(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("views") / "synth-classes"
    generate_classes(root, classes=3, per_class=10, val_per_class=4, size=32, seed=0)
    return root


@pytest.fixture(scope="module")
def mirrored(classes: Path) -> Path:
    """The same dataset with every training image mirrored in its file (PNG: lossless)."""
    root = classes.parent / "mirrored"
    shutil.copytree(classes, root)
    for path in sorted((root / "train").rglob("*.png")):
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    return root


@pytest.mark.parametrize("resize", ["crop", "resize"])
def test_the_hflip_view_is_the_preprocessing_of_the_mirrored_image(resize):
    image = _image(0)
    prep = Preprocess(img_size=32, resize=resize, interpolation="bicubic")
    mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    view = Preprocess(**{**prep.__dict__, "view": "hflip"}).item_transform()(image, 5)
    assert torch.equal(view, prep.transform()(mirrored))
    assert not torch.equal(view, prep.transform()(image))


def test_random_views_are_seeded_per_item_and_view():
    image = _image(1)
    view = lambda name, index: Preprocess(img_size=24, view=name).item_transform()(image, index)  # noqa: E731
    first = view("random:0:0", 3)
    assert first.shape == (3, 24, 24)
    assert torch.equal(first, view("random:0:0", 3))  # the same pixels on every run
    assert not torch.equal(first, view("random:0:0", 4))  # another item: another crop
    assert not torch.equal(first, view("random:0:1", 3))  # another view
    assert not torch.equal(first, view("random:1:0", 3))  # another views seed
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    view("random:0:0", 3)
    assert torch.equal(torch.rand(1), before)  # the global RNG is left as it was
    with pytest.raises(ValueError, match="item_transform"):
        Preprocess(view="random:0:0").transform()
    with pytest.raises(ValueError, match="hflip or random"):
        Preprocess(view="random:x")
    assert "view" not in Preprocess().to_dict()  # the plain key is what it was before views


def test_views_spec_names_and_the_command_line_form():
    assert ViewsSpec().names() == (None,)
    assert ViewsSpec("hflip").names() == (None, "hflip")
    assert parse_views("random:3").names() == ("random:0:0", "random:0:1", "random:0:2")
    assert parse_views("random:2").names() == parse_views("random:4").names()[:2]  # nested
    for bad in ("rand", "random:0", "random:65", "hflip:2", ""):
        with pytest.raises(UserError, match="use none, hflip, or random:K"):
            parse_views(bad)


def test_views_are_refused_for_a_probe_that_does_not_train_on_them(classes):
    with pytest.raises(UserError, match="knn probe does not train on augmented views"):
        prepare("knn", data=str(classes), views="hflip")
    with pytest.raises(UserError, match="attentive probe does not train on augmented views"):
        prepare("linprobe_attentive", data=str(classes), views="random:2")
    job = prepare("linprobe", data=str(classes), views="random:2")
    assert job.spec.views == ViewsSpec("random", 2)  # and the record's task spec says so


def test_the_grid_with_identical_views_is_the_grid_without_views():
    """Drawing views uses its own generator: the batches, and so every head, are unchanged."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 16, generator=gen), torch.arange(120) % 4
    val, val_y = torch.randn(40, 16, generator=gen), torch.arange(40) % 4
    config = LinearGridConfig(**QUICK)
    plain = linear_grid({"a": x}, y, {"a": val}, val_y, num_classes=4, config=config)
    tripled = x[:, None].expand(120, 3, 16)
    viewed = linear_grid({"a": tripled}, y, {"a": val}, val_y, num_classes=4, config=config)
    assert plain.rows == viewed.rows
    one = fit_linear(x, y, num_classes=4, head="linear", lr=0.01, weight_decay=0.0, config=config)
    many = fit_linear(
        tripled, y, num_classes=4, head="linear", lr=0.01, weight_decay=0.0, config=config
    )
    assert torch.equal(one.linear.weight, many.linear.weight)


def test_the_probe_draws_every_view():
    """With two different views the grid trains on both: its heads differ from either alone."""
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(80, 8, generator=gen), torch.randn(80, 8, generator=gen)
    y = torch.arange(80) % 2

    def fit(x: torch.Tensor) -> torch.Tensor:
        config = LinearGridConfig(**QUICK)
        head = fit_linear(x, y, num_classes=2, head="linear", lr=0.1, weight_decay=0, config=config)
        return head.linear.weight

    both = fit(torch.stack([a, b], dim=1))
    assert not torch.allclose(both, fit(a)) and not torch.allclose(both, fit(b))


@pytest.mark.slow
def test_hflip_training_equals_the_probe_on_explicitly_mirrored_images(classes, mirrored, tmp_path):
    """`views: hflip` = the image and its mirror as two views, where the mirror's features come
    from image files mirrored on disk; the head, its choice and its numbers are the same."""
    encoder = ie.load_encoder("ijepa_tiny_synth")
    options = ie.ExtractOptions(cache_dir=tmp_path / "cache", progress=False, workers=0)
    result = ie.evaluate(
        "linprobe",
        encoder=encoder,
        data=str(classes),
        views="hflip",
        params=QUICK,
        extraction=options,
        results_dir=tmp_path / "results",
    )
    record = result.record
    assert record["task_spec"]["views"] == {"kind": "hflip", "count": 1, "seed": 0}
    config = record["probe_config"]  # every parameter, the defaults too
    assert config["min_steps"] == 60 and config["momentum"] == LinearGridConfig().momentum
    views = [e.get("view") for e in record["features"]["entries"]]
    assert views == [None, "hflip", None]  # train, its mirror, the reported split

    # The same probe, by hand: the mirror's features extracted from the mirrored files.
    spec = get_task("linprobe")
    seen = task_encoder(encoder, spec.preprocess.overrides())
    names = spec.probe.representations
    blocks = tuple(range(len(encoder.blocks) - 4, len(encoder.blocks)))

    def features(root: Path, split: str):
        ds = ie.load_dataset("imagefolder", str(root), split)
        got = ie.extract(
            seen, ds, layers=list(blocks), cache_dir=tmp_path / "by-hand", progress=False
        )
        return representations(got.pooled(), blocks, names, encoder), torch.as_tensor(got.labels)

    (plain, y), (mirror, y_mirror) = features(classes, "train"), features(mirrored, "train")
    test_x, test_y = features(classes, "val")
    assert torch.equal(y, y_mirror)
    train = Part(plain, y, {k: torch.stack([plain[k], mirror[k]], dim=1) for k in names})
    fit_rows, select_rows = stratified_split(y, spec.dataset.holdout, spec.dataset.seed)
    fit, select = train.rows(fit_rows), train.rows(select_rows)
    inputs = ProbeInputs(
        fit, select, Part(test_x, test_y), train, 3, names, blocks, 3, encoder.grid
    )
    by_hand = LinearProbe().run(inputs, LinearProbe.parse(QUICK), None)

    assert by_hand.chosen == record["chosen"]
    assert by_hand.metrics == pytest.approx(record["metrics"], abs=0)
    saved = load_file(result.path.with_name(f"{record['run_id']}.head.safetensors"))
    for name, tensor in by_hand.artifacts.items():
        assert torch.equal(tensor, saved[name]), name


@pytest.mark.slow
def test_random_views_are_cached_and_nested(classes, tmp_path):
    options = ie.ExtractOptions(cache_dir=tmp_path / "cache", progress=False, workers=0)

    def run(views: str) -> dict:
        result = ie.evaluate(
            "linprobe",
            ckpt="ijepa_tiny_synth",
            data=str(classes),
            views=views,
            params=QUICK,
            extraction=options,
            results_dir=tmp_path / "results",
        )
        return result.record

    head = lambda record: load_file(  # noqa: E731
        tmp_path / "results" / "runs" / "linprobe" / record["head_weights"]
    )
    two = run("random:2")
    entries = two["features"]["entries"]
    assert [e.get("view") for e in entries] == [None, "random:0:0", "random:0:1", None]
    assert not any(e["cache_hit"] for e in entries)
    again = run("random:2")
    assert all(e["cache_hit"] for e in again["features"]["entries"])
    assert again["metrics"] == two["metrics"]
    four = run("random:4")
    hits = {e.get("view"): e["cache_hit"] for e in four["features"]["entries"]}
    assert hits == {None: True, "random:0:0": True, "random:0:1": True,
                    "random:0:2": False, "random:0:3": False}  # fmt: skip
    none = run("none")
    assert [e.get("view") for e in none["features"]["entries"]] == [None, None]
    trained = [head(record)["linear.weight"] for record in (none, two, four)]
    assert not torch.equal(trained[0], trained[1])  # the views were trained on
    assert not torch.equal(trained[1], trained[2])
