"""Inputs that used to give a silent wrong number: non-finite weights, 16-bit images decoded as
white, transparency shown as whatever colour hides under it, CMYK without its profile, folder
walks that loop through symbolic links.

Every image mode is checked against a reference computed here in numpy from the pixels the test
wrote (the compositing formula, the high byte, the CMYK formula, CIE L* to sRGB), never against
Pillow's own conversion."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.datasets import ImageFolder as TorchvisionImageFolder
from torchvision.datasets.folder import pil_loader
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.data.base import as_rgb, open_image
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.errors import DataWarning

runner = CliRunner()


def _with_nan(official_ckpt: Path, dest: Path, count: int = 5) -> Path:
    checkpoint = torch.load(official_ckpt, map_location="cpu", weights_only=True)
    weight = checkpoint["target_encoder"]["module.blocks.0.mlp.fc1.weight"]
    weight.view(-1)[:count] = float("nan")
    torch.save(checkpoint, dest)
    return dest


def test_nan_weights_are_refused_at_load_naming_the_tensor(official_ckpt, tmp_path):
    bad = _with_nan(official_ckpt, tmp_path / "nan.pth.tar")
    with pytest.raises(ie.CheckpointError, match=r"blocks\.0\.mlp\.fc1\.weight: 5 NaN values"):
        ie.load_encoder(bad)
    ie.load_encoder(bad, which="encoder")  # the context encoder in the same file is intact
    data = generate_classes(tmp_path / "data", classes=2, per_class=3, size=16, progress=False)
    run = ["run", "--tasks", "knn", "--data", str(data), "--results", str(tmp_path)]
    for command in (["info"], run):
        result = runner.invoke(app, [*command, "--ckpt", str(bad)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        (line,) = result.stderr.strip().splitlines()
        assert "non-finite weights" in line and "5 NaN values" in line
    assert not any((tmp_path / "runs").rglob("*.json"))  # no record


def test_infinite_weights_are_counted_apart(official_ckpt, tmp_path):
    checkpoint = torch.load(official_ckpt, map_location="cpu", weights_only=True)
    checkpoint["target_encoder"]["module.norm.bias"][:3] = torch.tensor(
        [float("nan"), float("inf"), float("-inf")]
    )
    torch.save(checkpoint, tmp_path / "inf.pth.tar")
    with pytest.raises(ie.CheckpointError, match=r"norm\.bias: 1 NaN and 2 infinite values"):
        ie.inspect_checkpoint(tmp_path / "inf.pth.tar")


def test_16_bit_grayscale_decodes_as_its_8_bit_version(tmp_path):
    gray8 = np.random.default_rng(0).integers(0, 256, (24, 24), dtype=np.uint8)
    Image.fromarray(gray8, "L").save(tmp_path / "g8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit PNG
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode in ("I;16", "I")  # what Pillow makes of a 16-bit grayscale PNG
        assert np.asarray(img.convert("RGB")).max() == 255  # Pillow alone: clipped, near white
    decoded = np.asarray(ie.data.base.open_image(tmp_path / "g16.png"))
    assert decoded.shape == (24, 24, 3)
    assert np.array_equal(decoded, np.asarray(ie.data.base.open_image(tmp_path / "g8.png")))
    floats = Image.fromarray(gray8.astype(np.float32) / 255.0, "F")
    assert np.array_equal(np.asarray(as_rgb(floats))[..., 0], gray8)


def test_16_bit_images_give_the_features_of_their_8_bit_versions(tmp_path, official_ckpt):
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        for i in range(3):
            gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
            for bits, pixels in ((8, gray), (16, gray.astype(np.uint16) * 257)):
                folder = tmp_path / f"d{bits}" / "train" / cls
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    enc = ie.load_encoder(official_ckpt)
    feats = [
        ie.extract(enc, ie.load_dataset("imagefolder", tmp_path / f"d{d}"), progress=False)
        for d in (8, 16)
    ]
    assert torch.equal(feats[0].pooled(), feats[1].pooled())


def test_symlink_loops_neither_hang_nor_pull_in_other_classes(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 90, 0, 0)).save(tmp_path / "train" / cls / f"{i}.png")
        os.symlink("..", tmp_path / "train" / cls / "loop")  # two loops, as the audit made
    os.symlink("self", tmp_path / "train" / "self")  # a link that loops onto itself (ELOOP)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ie.load_dataset("imagefolder", tmp_path, "train")
    assert sorted(ds.ids()) == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert ds.targets == [0, 0, 1, 1]
    assert sum(issubclass(w.category, DataWarning) for w in caught) == 2
    result = runner.invoke(app, ["data", "info", str(tmp_path)])
    assert result.exit_code == 0 and "Traceback" not in result.output


# --- image modes, each against a reference computed here ----------------------------------------


def _png(samples: np.ndarray, color_type: int, trns: bytes | None = None) -> bytes:
    """A 16-bit PNG written byte by byte (filter 0 on every row), so its samples are known
    exactly: ``samples`` is (H, W) or (H, W, C) uint16; color types 0 grey, 2 RGB, 4 grey+alpha,
    6 RGBA; ``trns`` the raw tRNS chunk (a transparent colour)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    height, width = samples.shape[:2]
    rows = samples.reshape(height, -1).astype(">u2")
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    extra = chunk(b"tRNS", trns) if trns is not None else b""
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )  # fmt: skip


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The reference: straight alpha over a white page, in floats, rounded."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.rint(rgb.astype(np.float64) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def _decode(data: bytes) -> np.ndarray:
    decoded = open_image(io.BytesIO(data))
    assert decoded.mode == "RGB"
    return np.asarray(decoded)


def test_16_bit_colour_pngs_keep_the_high_byte_of_each_sample():
    rng = np.random.default_rng(2)
    rgb16 = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    with Image.open(io.BytesIO(_png(rgb16, 2))) as img:
        assert img.mode == "RGB"  # Pillow has no 16-bit colour mode: it keeps the high byte
    assert np.array_equal(_decode(_png(rgb16, 2)), (rgb16 >> 8).astype(np.uint8))
    # an 8-bit image stored in 16 bits (v = 257·k, what converters write) decodes to itself
    rgb8 = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(_decode(_png(rgb8.astype(np.uint16) * 257, 2)), rgb8)
    # the same 16-bit values stored as grey give the same pixels: one rule for every 16-bit image
    grey16 = rgb16[..., 0]
    assert np.array_equal(_decode(_png(grey16, 0)), _decode(_png(np.stack([grey16] * 3, -1), 2)))
    # with alpha (16-bit RGBA and grey+alpha): high bytes, then over white
    alpha16 = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    alpha16[0, :3] = [0, 65535, 32768]
    expected = _over_white((rgb16 >> 8).astype(np.uint8), (alpha16 >> 8).astype(np.uint8))
    assert np.array_equal(_decode(_png(np.dstack([rgb16, alpha16]), 6)), expected)
    grey_expected = _over_white(np.stack([grey16 >> 8] * 3, -1), alpha16 >> 8)
    assert np.array_equal(_decode(_png(np.dstack([grey16, alpha16]), 4)), grey_expected)


def test_16_bit_grey_with_a_transparent_level_shows_white_there():
    grey16 = np.array([[0, 1000, 40000], [1000, 65535, 257]], dtype=np.uint16)
    decoded = _decode(_png(grey16, 0, trns=struct.pack(">H", 1000)))
    expected = np.where(grey16 == 1000, 255, grey16 >> 8).astype(np.uint8)
    assert np.array_equal(decoded, np.stack([expected] * 3, -1))


def _palette_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (6, 9), an RGB palette (4, 3) and an alpha per entry: clear, two partial, opaque."""
    rng = np.random.default_rng(3)
    index = rng.integers(0, 4, (6, 9), dtype=np.uint8)
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    return index, palette, np.array([0, 90, 200, 255], dtype=np.uint8)


def _saved(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _transparent_cases() -> dict[str, tuple[bytes | Image.Image, np.ndarray, np.ndarray]]:
    """Mode → (file bytes or image, reference RGB before compositing, reference alpha)."""
    index, palette, alpha = _palette_image()
    grey = (index * 60).astype(np.uint8)
    rgba = np.dstack([palette[index], alpha[index]])
    p = Image.fromarray(index, "P")
    p.putpalette(palette.tobytes())
    p_rgba = Image.fromarray(index, "P")  # a palette that holds alpha itself (in memory)
    p_rgba.putpalette(np.hstack([palette, alpha[:, None]]).tobytes(), rawmode="RGBA")
    opaque = np.full(index.shape, 255, np.uint8)
    colour_key = tuple(int(v) for v in palette[1])
    pa = Image.merge("PA", [Image.fromarray(index, "L"), Image.fromarray(alpha[index], "L")])
    pa.putpalette(palette.tobytes())  # palette index + alpha per pixel (in memory)
    return {
        "RGBA png": (_saved(Image.fromarray(rgba, "RGBA"), "PNG"), palette[index], alpha[index]),
        "LA png": (
            _saved(Image.fromarray(np.dstack([grey, alpha[index]]), "LA"), "PNG"),
            np.stack([grey] * 3, -1),
            alpha[index],
        ),
        "P + tRNS alpha per entry": (
            _saved(p, "PNG", transparency=alpha.tobytes()),
            palette[index],
            alpha[index],
        ),
        "P + transparent index (GIF)": (
            _saved(p, "GIF", transparency=1),
            palette[index],
            np.where(index == 1, 0, 255).astype(np.uint8),
        ),
        "P with an RGBA palette": (p_rgba, palette[index], alpha[index]),
        "PA": (pa, palette[index], alpha[index]),
        "RGB + tRNS colour key": (
            _saved(Image.fromarray(palette[index], "RGB"), "PNG", transparency=colour_key),
            palette[index],
            np.where((palette[index] == palette[1]).all(-1), 0, opaque).astype(np.uint8),
        ),
        "L + tRNS grey key": (
            _saved(Image.fromarray(grey, "L"), "PNG", transparency=60),
            np.stack([grey] * 3, -1),
            np.where(grey == 60, 0, 255).astype(np.uint8),
        ),
    }


@pytest.mark.parametrize("case", list(_transparent_cases()))
def test_transparency_is_composited_over_white(case):
    source, rgb, alpha = _transparent_cases()[case]
    with warnings.catch_warnings():  # Pillow: "… should be converted to RGBA images"
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(source, bytes):
            with Image.open(io.BytesIO(source)) as img:
                assert img.mode in ("RGBA", "LA", "P", "RGB", "L")
                torchvision_rgb = np.asarray(img.convert("RGB"))  # what pil_loader does
            decoded = _decode(source)
        else:
            assert source.mode in ("P", "PA")
            torchvision_rgb = np.asarray(source.convert("RGB"))
            decoded = np.asarray(as_rgb(source))
    assert (alpha < 255).any() and (alpha == 255).any()
    assert np.array_equal(decoded, _over_white(rgb, alpha))
    # torchvision drops alpha: it agrees where the image is opaque and only there
    opaque = alpha == 255
    assert np.array_equal(decoded[opaque], torchvision_rgb[opaque])
    clear = alpha == 0
    assert (decoded[clear] == 255).all() and not (torchvision_rgb[clear] == 255).all()


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _cmyk_profile_lightness_from_k() -> bytes:
    """An ICC v2 CMYK printer profile (header, wtpt, an A2B0 lut16 over Lab) in which only K
    matters: L* = 100·(1 − K), a* = b* = 0, whatever C, M, Y are."""
    clut = [v for corner in range(16) for v in (0 if corner & 1 else 0xFF00, 0x8000, 0x8000)]
    lut = (
        b"mft2" + bytes(4) + bytes([4, 3, 2, 0])  # 4 in, 3 out, a 2-point grid
        + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
        + struct.pack(">HH", 2, 2) + struct.pack(">8H", *[0, 65535] * 4)  # identity curves
        + struct.pack(f">{len(clut)}H", *clut) + struct.pack(">6H", *[0, 65535] * 3)
    )  # fmt: skip
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"wtpt", b"XYZ " + bytes(4) + d50), (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    header = (
        struct.pack(">I", offset + len(body)) + bytes(4) + struct.pack(">I", 0x02100000)
        + b"prtrCMYKLab " + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0) + d50
        + bytes(48)
    )  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + body


def _cmyk_pixels() -> np.ndarray:
    rng = np.random.default_rng(4)
    cmyk = rng.integers(0, 256, (4, 13, 4), dtype=np.uint8)
    cmyk[0, :, 3] = np.arange(0, 256, 20)  # K from 0 to 240
    return cmyk


def test_cmyk_without_a_profile_uses_the_standard_formula():
    cmyk = _cmyk_pixels()
    decoded = _decode(_saved(Image.fromarray(cmyk, "CMYK"), "TIFF"))
    ink, black = cmyk[..., :3].astype(np.float64) / 255, cmyk[..., 3:].astype(np.float64) / 255
    assert np.array_equal(decoded, np.rint(255 * (1 - ink) * (1 - black)).astype(np.uint8))


def test_cmyk_goes_through_its_embedded_icc_profile_to_srgb():
    cmyk = _cmyk_pixels()
    data = _saved(
        Image.fromarray(cmyk, "CMYK"), "TIFF", icc_profile=_cmyk_profile_lightness_from_k()
    )
    with Image.open(io.BytesIO(data)) as img:
        assert img.info.get("icc_profile")
    decoded = _decode(data).astype(np.int64)
    # the reference: L* → relative luminance (CIE) → sRGB's transfer curve, neutral grey
    lightness = 100.0 * (1 - cmyk[..., 3].astype(np.float64) / 255)
    f = (lightness + 16) / 116
    luminance = np.where(lightness > 8, f**3, lightness / 903.3)
    srgb = np.where(
        luminance <= 0.0031308, 12.92 * luminance, 1.055 * luminance ** (1 / 2.4) - 0.055
    )
    expected = np.rint(255 * srgb)[..., None]
    assert np.abs(decoded - expected).max() <= 2  # LittleCMS interpolates in 16 bits
    # without the profile the same pixels are coloured: the profile was really applied
    naive = np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB")).astype(np.int64)
    assert np.abs(naive - expected).max() > 100


def test_a_broken_cmyk_profile_falls_back_to_the_formula():
    cmyk = _cmyk_pixels()
    data = _saved(Image.fromarray(cmyk, "CMYK"), "TIFF", icc_profile=b"not an ICC profile" * 8)
    plain = _saved(Image.fromarray(cmyk, "CMYK"), "TIFF")
    assert np.array_equal(_decode(data), _decode(plain))


def test_exif_orientation_is_ignored_as_torchvision_does(tmp_path):
    """The paper's pipeline (ImageFolder's pil_loader) never calls exif_transpose: stored pixels."""
    pixels = np.random.default_rng(5).integers(0, 256, (4, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    with Image.open(tmp_path / "rotated.png") as img:
        assert img.getexif()[0x0112] == 6
        upright = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    decoded = np.asarray(open_image(tmp_path / "rotated.png"))
    assert np.array_equal(decoded, pixels)
    assert np.array_equal(decoded, np.asarray(pil_loader(str(tmp_path / "rotated.png"))))
    assert upright.shape == (7, 4, 3)  # what a viewer would show, and what we do not do


def test_opaque_8_bit_images_decode_exactly_as_torchvision_does(tmp_path):
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    p = Image.fromarray(rng.integers(0, 8, (5, 6), dtype=np.uint8), "P")
    p.putpalette(rng.integers(0, 256, 24, dtype=np.uint8).tobytes())
    for name, img in {
        "rgb.png": Image.fromarray(rgb),
        "grey.png": Image.fromarray(rgb[..., 0]),
        "palette.png": p,
        "bits.png": Image.fromarray(rgb[..., 0] > 127),
        "rgb.jpg": Image.fromarray(rgb),
    }.items():
        img.save(tmp_path / name)
        assert np.array_equal(
            np.asarray(open_image(tmp_path / name)), np.asarray(pil_loader(str(tmp_path / name)))
        ), name


# --- symbolic links, as torchvision follows them -----------------------------------------------


def test_links_out_of_the_root_are_followed_as_torchvision_does(tmp_path):
    outside = tmp_path / "elsewhere"
    for folder in ("photos", "more", "cls"):
        (outside / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8), (len(folder) * 30, 0, 0)).save(outside / folder / "o.png")
    train = tmp_path / "data" / "train"
    (train / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(train / "a" / "own.png")
    os.symlink(outside / "photos", train / "a" / "linked")  # a folder link leaving the root
    os.symlink(outside / "more" / "o.png", train / "a" / "file.png")  # a file link leaving it
    os.symlink(outside / "cls", train / "b")  # a whole class folder elsewhere
    ours = ie.load_dataset("imagefolder", tmp_path / "data", "train")
    theirs = TorchvisionImageFolder(str(train))
    assert ours.classes == theirs.classes == ["a", "b"]
    assert sorted(ours.ids()) == ["a/file.png", "a/linked/o.png", "a/own.png", "b/o.png"]
    assert sorted(zip(ours.ids(), ours.targets, strict=True)) == sorted(
        (os.path.relpath(path, train), target) for path, target in theirs.samples
    )
    image, _ = ours[ours.ids().index("a/linked/o.png")]
    assert image.getpixel((0, 0)) == (180, 0, 0)  # read through the link
