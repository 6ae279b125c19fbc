"""One way to derive a seed from several integers, for every seeded stream that is a function
of a few counters (the trainer's ``(seed, rank, epoch)``, a training view's ``(seed, view,
item)``): numpy's SeedSequence mixes them, so neighbouring counters give unrelated streams."""

from __future__ import annotations

import numpy as np


def mixed_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed (non-negative, so ``torch.manual_seed`` takes it).

    Cached random training views are keyed by their name, not by this function: changing it
    changes their pixels, so it needs a new ``EXTRACTOR_VERSION`` (features/store.py) too.
    """
    state = np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0]
    return int(state >> np.uint64(1))
