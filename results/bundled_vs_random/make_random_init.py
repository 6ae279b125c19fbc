"""Write the bundled model's architecture with random (official-init) weights, for comparison.

    python results/bundled_vs_random/make_random_init.py out/random_init.pth.tar

Same VitArch, same fp16 native layout as checkpoints/ijepa_tiny_synth.pth.tar; weights from
the trainer's own initialisation (seed 0) and the fixed sin-cos position table.
"""

from __future__ import annotations

import sys

import torch

import ijepa_eval as ie
from ijepa_eval.train.checkpoint import save
from ijepa_eval.train.init import new_encoder


def main(dest: str) -> None:
    arch = ie.load_encoder("ijepa_tiny_synth").arch
    torch.manual_seed(0)
    encoder = new_encoder(arch)
    state = {f"module.{k}": v.half() for k, v in encoder.state_dict().items()}
    save(dest, {"target_encoder": state, "epoch": 0, "ijepa_eval": {"arch": arch.to_dict()}})


if __name__ == "__main__":
    main(sys.argv[1])
