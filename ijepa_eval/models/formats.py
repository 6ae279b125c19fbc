"""The single place where foreign weight layouts become ours (timm's, which is also native's).

`to_timm_layout` recognises a state dict's layout by its keys and hands it to one small
converter; `timm_to_hf` is the way back for ``convert --to hf``. Every loading path goes through
`to_timm_layout`, so no source skips the mapping.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import torch

from ijepa_eval.errors import CheckpointError

StateDict = dict[str, torch.Tensor]

# (timm/native name, HF on-disk name): a trailing "." marks a prefix, {i} a block index. The HF
# attention q/k/v are stored split; timm fuses them into one ``qkv`` (q, k, v order).
_NAME_PAIRS = [
    ("patch_embed.proj.", "embeddings.patch_embeddings.projection."),
    ("pos_embed", "embeddings.position_embeddings"),
    ("blocks.{i}.norm1.", "encoder.layer.{i}.layernorm_before."),
    ("blocks.{i}.attn.proj.", "encoder.layer.{i}.attention.output.dense."),
    ("blocks.{i}.norm2.", "encoder.layer.{i}.layernorm_after."),
    ("blocks.{i}.mlp.fc1.", "encoder.layer.{i}.intermediate.dense."),
    ("blocks.{i}.mlp.fc2.", "encoder.layer.{i}.output.dense."),
    ("norm.", "layernorm."),
]
# transformers >= 5 module names (a live IJepaModel's state_dict()) → HF on-disk names.
_HF5_PAIRS = [
    ("layers.{i}.attention.q_proj.", "encoder.layer.{i}.attention.attention.query."),
    ("layers.{i}.attention.k_proj.", "encoder.layer.{i}.attention.attention.key."),
    ("layers.{i}.attention.v_proj.", "encoder.layer.{i}.attention.attention.value."),
    ("layers.{i}.attention.o_proj.", "encoder.layer.{i}.attention.output.dense."),
    ("layers.{i}.mlp.fc1.", "encoder.layer.{i}.intermediate.dense."),
    ("layers.{i}.mlp.fc2.", "encoder.layer.{i}.output.dense."),
    ("layers.{i}.", "encoder.layer.{i}."),
]
_QKV = ("query", "key", "value")
_HF_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(\w+)$")
_TIMM_QKV = re.compile(r"^blocks\.(\d+)\.attn\.qkv\.(\w+)$")
# Parts of an HF checkpoint that are not the encoder: a classification head, the unused pooler.
_HF_EXTRAS = ("classifier.", "pooler.")


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    body = re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)")
    return re.compile("^" + body + ("" if template.endswith(".") else "$"))


def _rename(key: str, pairs: list[tuple[str, str]], reverse: bool = False) -> str | None:
    """Rename ``key`` by the first matching pair (left → right, or right → left)."""
    for pair in pairs:
        src, dst = (pair[1], pair[0]) if reverse else pair
        if m := _pattern(src).match(key):
            return dst.format(i=m.group("i") if "{i}" in src else "") + key[m.end() :]
    return None


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Remove ``prefix`` from every key that has it (DDP's ``module.``, HF's ``ijepa.``)."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def detect_layout(state: Mapping[str, torch.Tensor]) -> str | None:
    if "patch_embed.proj.weight" in state:
        return "timm"
    if "embeddings.patch_embeddings.projection.weight" in state:
        return "hf"
    return None


def to_timm_layout(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Any supported encoder state dict → timm/native key layout."""
    state = strip_prefix(strip_prefix(state, "module."), "ijepa.")
    if any(k.startswith("layers.") for k in state):
        state = {_rename(k, _HF5_PAIRS) or k: v for k, v in state.items()}
    layout = detect_layout(state)
    if layout == "timm":
        return dict(state)
    if layout == "hf":
        return hf_to_timm(state)
    sample = ", ".join(sorted(state)[:4]) or "no tensors"
    raise CheckpointError(
        f"unrecognised weight layout (first keys: {sample}); expected an I-JEPA/timm ViT "
        "('patch_embed.proj.weight', 'blocks.N.…') or a Hugging Face IJepaModel"
    )


def hf_to_timm(state: Mapping[str, torch.Tensor]) -> StateDict:
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith(_HF_EXTRAS):
            continue
        if m := _HF_QKV.match(key):
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
        else:
            out[_rename(key, _NAME_PAIRS, reverse=True) or key] = value
    for (layer, kind), parts in qkv.items():
        missing = [p for p in _QKV if p not in parts]
        if missing:
            raise CheckpointError(f"layer {layer} attention lacks {'/'.join(missing)} {kind}")
        shapes = {p: tuple(parts[p].shape) for p in _QKV}
        if len(set(shapes.values())) > 1:  # query, key and value are fused: they must agree
            base = f"encoder.layer.{layer}.attention.attention"
            odd = next(p for p in _QKV if list(shapes.values()).count(shapes[p]) == 1)
            rest = next(shapes[p] for p in _QKV if p != odd)
            raise CheckpointError(
                f"{base}.{odd}.{kind} has shape {shapes[odd]}, expected {rest} like the other two"
                " of query/key/value"
            )
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts[p] for p in _QKV], dim=0)
    return out


def timm_to_hf(state: Mapping[str, torch.Tensor]) -> StateDict:
    """timm/native layout → HF on-disk layout (``qkv`` split into query, key, value)."""
    out: StateDict = {}
    for key, value in state.items():
        if m := _TIMM_QKV.match(key):
            base = f"encoder.layer.{m.group(1)}.attention.attention"
            for name, part in zip(_QKV, value.chunk(3, dim=0), strict=True):
                out[f"{base}.{name}.{m.group(2)}"] = part.contiguous()
            continue
        new = _rename(key, _NAME_PAIRS)
        if new is None:
            raise CheckpointError(f"no Hugging Face name for encoder weight {key!r}")
        out[new] = value
    return out


def source_name(key: str, layout: str) -> str:
    """What a timm-layout key is called in the file it came from (for messages).

    HF files store the fused ``qkv`` as three tensors, named together: ``…attention.attention.
    query/key/value.weight``.
    """
    if layout != "hf":
        return key
    if m := _TIMM_QKV.match(key):
        return f"encoder.layer.{m.group(1)}.attention.attention.query/key/value.{m.group(2)}"
    return _rename(key, _NAME_PAIRS) or key
