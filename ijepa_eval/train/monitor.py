"""Online evaluation while pretraining: a k-NN probe on the target encoder's lastPOOL features.

The held-out datasets are opened once; each evaluation encodes both splits with the current
target encoder (eval preprocessing: resize, centre crop, ImageNet normalisation) and runs the
probe issue's `knn_eval`. It runs on rank 0 while the other ranks wait.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ijepa_eval.data import load_dataset
from ijepa_eval.data.base import EvalDataset
from ijepa_eval.errors import UserError
from ijepa_eval.models.vit import Encoder
from ijepa_eval.preprocess import Preprocess
from ijepa_eval.train.config import PretrainConfig


class KnnMonitor:
    """``monitor(encoder)`` → k-NN top-1 accuracy on ``eval.test_split``."""

    def __init__(self, cfg: PretrainConfig, device: torch.device) -> None:
        ev = cfg.eval
        name, root = ev.dataset or cfg.data.dataset, ev.root or cfg.data.root
        transform = Preprocess(img_size=cfg.model.img_size).transform()
        self.train = load_dataset(name, root, ev.train_split, transform=transform)
        self.test = load_dataset(name, root, ev.test_split, transform=transform)
        for ds in (self.train, self.test):
            if ds.targets is None:
                raise UserError(f"eval.dataset {name!r} has no class labels for a k-NN probe")
        self.num_classes = len(self.train.classes or []) or 1 + max(self.train.targets)
        self.cfg, self.device = ev, device

    @torch.no_grad()
    def features(self, encoder: Encoder, dataset: EvalDataset) -> torch.Tensor:
        loader = DataLoader(dataset, batch_size=self.cfg.batch_size, num_workers=0)
        cuda = self.device.type == "cuda"
        pooled = []
        for images, _ in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                tokens = encoder(images.to(self.device, non_blocking=True))
            pooled.append(tokens.float().mean(dim=1).cpu())  # lastPOOL
        return torch.cat(pooled)

    def __call__(self, encoder: Encoder) -> float:
        from ijepa_eval.probes import knn_eval

        was_training = encoder.training
        encoder.eval()
        train, test = self.features(encoder, self.train), self.features(encoder, self.test)
        encoder.train(was_training)
        results = knn_eval(
            train,
            torch.tensor(self.train.targets),
            test,
            torch.tensor(self.test.targets),
            num_classes=self.num_classes,
            ks=(self.cfg.k,),
            temperature=self.cfg.temperature,
            device=self.device,
        )
        return float(results[self.cfg.k]["top1"])
