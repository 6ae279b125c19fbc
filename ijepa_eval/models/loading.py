"""``load_encoder``: a checkpoint spec in, a ready encoder that says what it is out."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from ijepa_eval.errors import CheckpointError, UserError
from ijepa_eval.hashing import sha256_file
from ijepa_eval.models.arch import VitArch, heads_for_width, infer_arch
from ijepa_eval.models.formats import source_name
from ijepa_eval.models.info import EncoderInfo
from ijepa_eval.models.sources import (
    ENCODER_NETWORKS,
    UNLABELLED,
    Checkpoint,
    open_checkpoint,
)
from ijepa_eval.models.vit import Encoder, resample_pos_embed
from ijepa_eval.preprocess import Preprocess


class SourceWarning(UserWarning):
    """Something about a checkpoint the user should know (context encoder, 0.5 normalisation)."""


def load_encoder(
    spec: str | os.PathLike[str],
    which: str | None = None,
    *,
    heads: int | None = None,
    img_size: int | None = None,
    preprocess: Preprocess | Mapping[str, Any] | None = None,
    source_norm: bool = False,
) -> Encoder:
    """Load an I-JEPA encoder from any supported source, in eval mode on the CPU.

    Args:
        spec: a native ``.pth.tar``/``.pth``/``.pt`` file, a bare state dict, an HF model
            directory, a Hub id (``facebook/ijepa_vith14_1k``), ``timm:<name>.<tag>`` or a
            registry name (``ijepa-eval models``).
        which: ``"target_encoder"`` (the default where present: the paper's choice) or
            ``"encoder"`` (the context encoder).
        heads: attention heads, for widths outside the standard I-JEPA table.
        img_size: evaluation resolution; the position embedding is resized (bicubic) if it
            differs from the checkpoint's.
        preprocess: overrides of the default `Preprocess` (fields or a whole object).
        source_norm: use the normalisation the source declares instead of I-JEPA's ImageNet one.
    """
    checkpoint = open_checkpoint(spec)
    network, state = _choose_network(checkpoint, which)
    _require_finite(checkpoint, network, state)
    info, arch = _describe(checkpoint, network, state, heads, img_size, preprocess, source_norm)
    encoder, state = _fit(arch, info.resolution, state, checkpoint)
    encoder.load_state_dict(state, strict=True, assign=True)
    encoder.pos_embed.requires_grad_(False)
    encoder.eval()
    encoder.info = info
    encoder.preprocess = _preprocess_from(info)
    for message in info.warnings:
        warnings.warn(message, SourceWarning, stacklevel=2)
    return encoder


def inspect_checkpoint(
    spec: str | os.PathLike[str],
    which: str | None = None,
    *,
    heads: int | None = None,
    img_size: int | None = None,
    preprocess: Preprocess | Mapping[str, Any] | None = None,
    source_norm: bool = False,
) -> EncoderInfo:
    """What `load_encoder` would load, without building the model (for ``ijepa-eval info``)."""
    checkpoint = open_checkpoint(spec)
    network, state = _choose_network(checkpoint, which)
    _require_finite(checkpoint, network, state)
    info, arch = _describe(checkpoint, network, state, heads, img_size, preprocess, source_norm)
    _fit(arch, info.resolution, state, checkpoint)  # the weights must fit, or info says nothing
    return info


def _choose_network(checkpoint: Checkpoint, which: str | None) -> tuple[str, dict]:
    present = checkpoint.networks
    if which is not None and which not in ENCODER_NETWORKS:
        raise UserError(f"which must be 'target_encoder' or 'encoder', not {which!r}")
    if UNLABELLED in present:
        if which is not None:
            checkpoint.notes.append(
                f"{checkpoint.path.name} is a bare state dict that does not say which network it "
                f"is; loaded as given (which={which!r} could not be checked)"
            )
        return UNLABELLED, present[UNLABELLED]
    if which is None:
        which = next(n for n in ENCODER_NETWORKS if n in present)
        if which == "encoder" and checkpoint.source_format == "native":
            checkpoint.notes.append(
                "this checkpoint holds only the context encoder ('encoder'); the paper evaluates "
                "the target encoder"
            )
        if which == "target_encoder" and checkpoint.source_format == "timm":
            checkpoint.notes.append(
                "timm.create_model(pretrained=True) loads the context encoder of this file; "
                "ijepa-eval defaults to the target encoder the paper evaluates "
                "(which='encoder' to match timm)"
            )
    if which not in present:
        held = ", ".join(present)
        raise CheckpointError(
            f"{checkpoint.spec} holds no {which} (it has: {held}); choose --which "
            f"{next(iter(present))} or use a native checkpoint that has both"
        )
    return which, present[which]


def _require_finite(checkpoint: Checkpoint, network: str, state: Mapping[str, Any]) -> None:
    """Refuse weights holding NaN or infinity: they run to the end and give chance numbers."""
    bad = []
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                nan = int(torch.isnan(tensor).sum())
                inf = int((~finite).sum()) - nan
                counts = [f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "infinite")) if n]
                bad.append(f"{name}: {' and '.join(counts)} values")
    if bad:
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError(
            f"{checkpoint.spec} ({network}) holds non-finite weights: {bad[0]}{more}; "
            "the checkpoint is damaged or its training diverged"
        )


def _describe(
    checkpoint: Checkpoint,
    network: str,
    state: dict,
    heads: int | None,
    img_size: int | None,
    preprocess: Preprocess | Mapping[str, Any] | None,
    source_norm: bool,
) -> tuple[EncoderInfo, VitArch]:
    arch = _arch(checkpoint, state, heads)
    resolution = img_size or arch.resolution
    if resolution % arch.patch_size:
        raise UserError(
            f"image size {resolution} is not a multiple of the patch size {arch.patch_size}"
        )
    notes = list(checkpoint.notes)
    if resolution != arch.resolution:
        notes.append(
            f"position embedding resized from {arch.grid}×{arch.grid} to "
            f"{resolution // arch.patch_size}×{resolution // arch.patch_size} patches (bicubic): "
            f"evaluating at {resolution}px, trained at {arch.resolution}px"
        )
    prep, norm_note = _preprocess(checkpoint, resolution, preprocess, source_norm)
    notes += [norm_note] if norm_note else []
    entry = checkpoint.registry_entry
    info = EncoderInfo(
        spec=checkpoint.spec,
        source_format=checkpoint.source_format,
        path=str(checkpoint.path.resolve()),
        sha256=sha256_file(checkpoint.path),
        networks_present=list(checkpoint.networks) + checkpoint.others,
        network=network,
        arch=arch.name,
        embed_dim=arch.embed_dim,
        depth=arch.depth,
        num_heads=arch.num_heads,
        mlp_hidden=arch.mlp_hidden,
        patch_size=arch.patch_size,
        resolution=resolution,
        checkpoint_resolution=arch.resolution,
        num_params=sum(t.numel() for t in state.values()),
        preprocess=prep.to_dict(),
        epoch=checkpoint.epoch,
        registry_name=entry.name if entry else None,
        declared_normalization=checkpoint.declared_normalization,
        warnings=notes,
    )
    if entry and entry.sha256 and entry.sha256 != info.sha256:
        raise CheckpointError(
            f"{checkpoint.path}: sha256 {info.sha256} differs from the registry's {entry.sha256}"
        )
    return info, arch


def _arch(checkpoint: Checkpoint, state: dict, heads: int | None) -> VitArch:
    """The architecture the weights have, checked against what the source says of itself.

    Shapes tell everything but the heads and the LayerNorm eps. Where a config (or the arch our
    writers store) states a field, a contradiction with weights that are consistent among
    themselves is an error naming the field; weights inconsistent among themselves are checked
    against the stated shape, so `_fit` names each tensor that does not fit.
    """
    if "cls_token" in state or "reg_token" in state:
        raise CheckpointError(
            f"{checkpoint.path} has a class/register token: not an I-JEPA-style encoder"
        )
    stated = {name: value for name, (_, _, value) in checkpoint.stated_arch.items()}
    told = f"{checkpoint.stated_in} num_attention_heads" if "num_heads" in stated else "--heads"
    if heads is not None:
        stated["num_heads"], told = heads, "--heads"
    try:
        weights = infer_arch(state, heads=1)  # heads change no shape; they are set below
    except CheckpointError:
        if not stated.keys() >= _SHAPE_FIELDS:
            raise
        heads_for_width(stated["embed_dim"], stated["num_heads"], told)
        return VitArch(**stated)  # damaged weights: `_fit` names each tensor against this
    weights = replace(weights, norm_eps=stated.get("norm_eps", weights.norm_eps))
    wanted = replace(weights, **stated)
    if _shape_of(wanted) != _shape_of(weights) and not _misfits(
        weights, weights.resolution, state, checkpoint
    ):
        raise _contradiction(checkpoint, weights, wanted)
    return replace(
        wanted, num_heads=heads_for_width(wanted.embed_dim, stated.get("num_heads"), told)
    )


# Everything VitArch needs besides what has a default; and the fields tensor shapes decide.
_SHAPE_FIELDS = {"embed_dim", "depth", "num_heads", "mlp_hidden", "patch_size", "grid"}
# (``resolution``: image_size is stated in pixels, so a patch size alone never blames it too)
_CHECKED = ("embed_dim", "depth", "mlp_hidden", "patch_size", "resolution", "in_chans", "qkv_bias")


def _shape_of(arch: VitArch) -> tuple:
    return tuple(getattr(arch, f) for f in _CHECKED)


def _contradiction(checkpoint: Checkpoint, weights: VitArch, wanted: VitArch) -> CheckpointError:
    """The stated fields the (self-consistent) weights contradict, the first one explained."""
    says = {
        "embed_dim": f"are {weights.embed_dim} wide",
        "depth": f"hold {weights.depth} layers",
        "mlp_hidden": f"have MLPs {weights.mlp_hidden} wide",
        "patch_size": f"use {weights.patch_size}×{weights.patch_size} patches",
        "resolution": f"hold position embeddings for {weights.grid}×{weights.grid} patches "
        f"of {weights.patch_size} px ({weights.resolution} px)",
        "in_chans": f"take {weights.in_chans} input channels",
        "qkv_bias": "have attention biases" if weights.qkv_bias else "have no attention biases",
    }
    stated = {("resolution" if f == "grid" else f): v for f, v in checkpoint.stated_arch.items()}
    wrong = [f for f in _CHECKED if f in stated and getattr(wanted, f) != getattr(weights, f)]
    key, value, _ = stated[wrong[0]]
    also = [stated[f][0] for f in wrong[1:]]
    more = f" (also {', '.join(also)})" if also else ""
    return CheckpointError(
        f"{checkpoint.stated_in}: {key} is {value!r}, but the weights {says[wrong[0]]}{more}; "
        "the metadata contradicts the weights: correct it or re-save the model"
    )


def _preprocess(
    checkpoint: Checkpoint,
    resolution: int,
    overrides: Preprocess | Mapping[str, Any] | None,
    source_norm: bool,
) -> tuple[Preprocess, str | None]:
    if isinstance(overrides, Preprocess):
        base = overrides.with_overrides(img_size=resolution)
    else:
        base = Preprocess().with_overrides(**{"img_size": resolution, **(overrides or {})})
    declared = checkpoint.declared_normalization
    if declared is None or _same_norm(declared, base):
        return base, None
    if source_norm:
        return base.with_overrides(mean=declared["mean"], std=declared["std"]), (
            f"using the source's normalisation mean={declared['mean']} std={declared['std']} "
            "(source_norm), not the ImageNet statistics I-JEPA was trained with"
        )
    return base, (
        f"the source declares mean={declared['mean']} std={declared['std']} "
        f"({declared['from']}); keeping I-JEPA's training normalisation mean={list(base.mean)} "
        f"std={list(base.std)} (source_norm / --source-norm to use the source's)"
    )


def _same_norm(declared: Mapping[str, Any], prep: Preprocess) -> bool:
    close = lambda a, b: all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))  # noqa: E731
    return close(declared["mean"], prep.mean) and close(declared["std"], prep.std)


def _preprocess_from(info: EncoderInfo) -> Preprocess:
    fields = {k: v for k, v in info.preprocess.items() if k != "resize_size"}
    return Preprocess(**{**fields, "mean": tuple(fields["mean"]), "std": tuple(fields["std"])})


def _fit(
    arch: VitArch, resolution: int, state: dict, checkpoint: Checkpoint
) -> tuple[Encoder, dict]:
    """An empty (meta-device) encoder and the state dict that fits it, or a `CheckpointError`."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    grid = resolution // arch.patch_size
    table = state.get("pos_embed")
    if (
        table is not None
        and grid != arch.grid
        and table.shape[-2:] == (arch.grid**2, arch.embed_dim)
    ):
        state["pos_embed"] = resample_pos_embed(state["pos_embed"], grid)
    with torch.device("meta"):
        encoder = Encoder(arch, img_size=resolution)
    _check_keys(encoder, state, checkpoint)
    return encoder, state


def _check_keys(encoder: Encoder, state: dict, checkpoint: Checkpoint) -> None:
    problems = _problems(encoder, state, checkpoint)
    if problems:
        raise CheckpointError(
            f"{checkpoint.path} does not fit an I-JEPA ViT ({'; '.join(problems)})"
        )


def _misfits(arch: VitArch, resolution: int, state: dict, checkpoint: Checkpoint) -> list[str]:
    """What keeps ``state`` from loading into an encoder of ``arch`` (nothing: it fits)."""
    with torch.device("meta"):
        encoder = Encoder(arch, img_size=resolution)
    return _problems(encoder, state, checkpoint)


def _problems(encoder: Encoder, state: dict, checkpoint: Checkpoint) -> list[str]:
    """Missing, unexpected and wrong-shaped tensors, named as the source file names them."""
    name = lambda key: source_name(key, checkpoint.source_format)  # noqa: E731
    expected = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    missing = [name(k) for k in sorted(set(expected) - set(state))]
    unexpected = [name(k) for k in sorted(set(state) - set(expected))]
    wrong = [
        f"{name(k)} is {tuple(state[k].shape)}, expected {expected[k]}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != expected[k]
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
            problems.append(f"{label}: {', '.join(keys[:5])}{more}")
    return problems
