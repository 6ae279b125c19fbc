"""Pretraining configs (YAML + overrides + presets) and the optimisation schedules."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from ijepa_eval.errors import UserError
from ijepa_eval.train.config import PretrainConfig, load_config, presets
from ijepa_eval.train.init import new_encoder
from ijepa_eval.train.predictor import Predictor
from ijepa_eval.train.schedules import Schedules, apply_schedules, make_optimizer


def test_official_presets_hold_the_official_hyper_parameters():
    assert {"vith14_in1k", "vith16_448_in1k", "vith14_in22k", "vitg16_in22k"} <= set(presets())
    h14 = load_config("vith14_in1k")
    assert (h14.model.embed_dim, h14.model.depth, h14.model.num_heads) == (1280, 32, 16)
    assert (h14.model.patch_size, h14.model.img_size) == (14, 224)
    assert (h14.model.predictor_depth, h14.model.predictor_embed_dim) == (12, 384)
    assert h14.data.batch_size == 128 and h14.data.crop_scale == (0.3, 1.0)
    opt = h14.optimization
    assert (opt.epochs, opt.warmup, opt.start_lr, opt.lr, opt.final_lr) == (
        300,
        40,
        2e-4,
        1e-3,
        1e-6,
    )
    assert (opt.weight_decay, opt.final_weight_decay, opt.ema) == (0.04, 0.4, (0.996, 1.0))
    mask = h14.mask
    assert (mask.num_targets, mask.target_scale, mask.aspect_ratio) == (4, (0.15, 0.2), (0.75, 1.5))
    assert (mask.num_context, mask.context_scale, mask.min_keep) == (1, (0.85, 1.0), 10)
    h448 = load_config("vith16_448_in1k")
    assert (h448.model.patch_size, h448.model.img_size, h448.data.batch_size) == (16, 448, 16)
    g16 = load_config("vitg16_in22k")
    assert g16.model.arch().mlp_hidden == 6144 and g16.model.predictor_depth == 16
    assert (g16.optimization.epochs, g16.optimization.warmup) == (44, 3)
    assert (load_config("vith14_in22k").optimization.epochs, h14.model.arch().grid) == (66, 16)


def test_every_preset_loads_and_round_trips_through_yaml(tmp_path):
    for name in presets():
        cfg = load_config(name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg.to_dict()))
        assert load_config(path) == cfg
        cfg.model.arch()  # a consistent architecture


def test_overrides_use_dotted_keys_and_yaml_values():
    cfg = load_config(
        "vit_tiny_synth",
        ["optimization.lr=1e-3", "data.batch_size=8", "optimization.clip_grad=1",
         "mask.aspect_ratio=[1, 2]", "optimization.stop_after=null", "seed=3"],
    )  # fmt: skip
    assert cfg.optimization.lr == 1e-3 and isinstance(cfg.optimization.lr, float)
    assert cfg.data.batch_size == 8 and cfg.optimization.clip_grad == 1.0
    assert cfg.mask.aspect_ratio == (1.0, 2.0) and cfg.optimization.stop_after is None
    assert cfg.seed == 3
    assert cfg.with_overrides(["seed=4"]).seed == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["optimization.lrr=1"],
            r"unknown config key 'optimization.lrr'; did you mean optimization.lr",
        ),
        (["model.widht=3"], r"unknown config key 'model.widht'"),
        (["dta.root=x"], r"unknown config key 'dta'; did you mean data"),
        (["data.batch_size=big"], r"data.batch_size must be int, not 'big'"),
        (["mask.target_scale=0.2"], r"mask.target_scale must be a list of 2 numbers"),
        (["seed"], r"override 'seed' is not key=value"),
    ],
)
def test_bad_config_is_one_clear_error(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config("vit_tiny_synth", overrides)


def test_unknown_key_in_a_file_and_unknown_preset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optimization:\n  warmpu: 3\n")
    with pytest.raises(UserError, match=r"'optimization.warmpu'; did you mean optimization.warmup"):
        load_config(path)
    with pytest.raises(UserError, match=r"did you mean vit_tiny_synth"):
        load_config("vit_tiny_synt")


def test_schedules_warm_up_then_decay_as_the_official_ones():
    s = Schedules(
        iterations_per_epoch=10, epochs=10, warmup=2, start_lr=2e-4, lr=1e-3, final_lr=1e-6,
        weight_decay=0.04, final_weight_decay=0.4, ema=(0.996, 1.0),
    )  # fmt: skip
    lrs = [s.lr_at(i) for i in range(100)]
    # The official scheduler is stepped before use: step 0 is already 1/20 of the way up.
    assert lrs[0] == pytest.approx(2e-4 + 8e-4 / 20)
    assert lrs[18] == pytest.approx(2e-4 + 8e-4 * 19 / 20)
    assert lrs[19] == pytest.approx(1e-3)  # warmup done: the cosine starts at the peak
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:], strict=False))
    assert lrs[59] == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[99] == pytest.approx(1e-6)
    wds = [s.wd_at(i) for i in range(100)]
    assert wds[0] == pytest.approx(0.04, abs=1e-3) and wds[99] == pytest.approx(0.4)
    assert wds[49] == pytest.approx(0.22)  # half way through the cosine
    assert all(a <= b for a, b in zip(wds, wds[1:], strict=False))
    assert s.momentum_at(0) == 0.996 and s.momentum_at(50) == pytest.approx(0.998)
    assert s.momentum_at(100) == pytest.approx(1.0)


def test_optimizer_decays_only_weights_with_two_or_more_dims():
    cfg = load_config("vit_tiny_synth", ["model.depth=1", "model.predictor_depth=1"])
    arch = cfg.model.arch()
    encoder = new_encoder(arch)
    predictor = Predictor(arch.grid**2, arch.embed_dim, 96, depth=1, num_heads=arch.num_heads)
    optimizer = make_optimizer(encoder, predictor)
    apply_schedules(optimizer, lr=0.5, wd=0.3)
    names = {id(p): n for net in (encoder, predictor) for n, p in net.named_parameters()}
    for group in optimizer.param_groups:
        assert group["lr"] == 0.5
        for p in group["params"]:
            no_decay = p.ndim == 1 or names[id(p)].endswith("bias")
            assert group["weight_decay"] == (0.0 if no_decay else 0.3), names[id(p)]
    counted = sum(len(g["params"]) for g in optimizer.param_groups)
    assert counted == len(list(encoder.parameters())) + len(list(predictor.parameters()))
    assert isinstance(optimizer, torch.optim.AdamW) and len(optimizer.param_groups) == 4


def test_config_dict_is_plain_data():
    data = PretrainConfig().to_dict()
    assert yaml.safe_load(yaml.safe_dump(data)) == data
