"""Probe speed against scikit-learn on the same synthetic features, in one run.

    python benchmarks/bench_probes.py [--train 10000] [--knn-train 100000] [--knn-test 2000]

(a) The linear grid: 2 representations (lastPOOL, concatPOOL4) x {linear, bn_linear} x
    DINOv2's 13 lrs (x raw and whitened coordinates by default: 104 heads) in one pass (each
    `--grid` variant: LinearGridConfig overrides),
    against scikit-learn's LogisticRegression(lbfgs, each of --sk-max-iter) fitting 52
    configurations (the same 2 x 2, bn_linear as StandardScaler + LR, x 13 C values). Fitting
    all 52 would take most of the time budget, so `--sk-sample` C values per (representation,
    head) are fitted and timed, and each (representation, head) is charged 13 x their mean; the
    table lists the measured fits (`--sk-c` names the C values instead, `--sk-only REP:HEAD`
    fits only those pairs and charges each other pair 13 x the mean of all fits made).
    `--features blobs`: Gaussian blobs (well conditioned, easy for L-BFGS); `--features
    encoder`: real encoder features (the bundled model on `data synth-classes` images, made in
    --workdir), conditioned like real ViT features; `--per-class 11 70 700` runs the comparison
    at several training sizes, each the first N images per class of one generated and cached
    set (`--pool-per-class`), all scored on the same validation split (`--val-per-class`).
(b) `logreg_fit` against LogisticRegression(lbfgs, max_iter=1000, tol=1e-6) at equal C and the
    same stopping rule.
(c) k-NN (k = 10, 20, 100, 200, T = 0.07) against NearestNeighbors(metric="cosine", brute force)
    plus the same weighted vote in numpy.

Blob features are synthetic and honestly labelled: Gaussian class centres plus unit noise,
stored in float16 as the cache stores them. Compared runs alternate and medians are taken,
because the machine may be shared; `--threads N` caps torch and BLAS threads for both sides
alike (on a busy 2-core machine two threads stall at OpenMP barriers). Prints a Markdown
section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ijepa_eval.probes import LinearGridConfig, classification_metrics, knn_eval, linear_grid
from ijepa_eval.probes.linear import Whitening
from ijepa_eval.probes.logreg import logreg_fit
from ijepa_eval.schema import parse_assignments

SK_CS = np.logspace(-4, 2, 13)


def blobs(n: int, classes: int, dim: int, *, blocks: int, seed: int, scale: float):
    """(n, blocks, dim) float16 features (class centre per block + unit noise) and labels."""
    centres = np.random.default_rng(1000 + classes).normal(size=(blocks, classes, dim)) * scale
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = centres[:, y].transpose(1, 0, 2) + rng.normal(size=(n, blocks, dim))
    return torch.tensor(x + 1.0, dtype=torch.float16), torch.from_numpy(y)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def blob_reps(args) -> tuple[dict, torch.Tensor, dict, torch.Tensor, int, str]:
    """Isotropic Gaussian blobs: well conditioned, so L-BFGS converges in a few dozen steps."""
    p_train, y_train = blobs(args.train, 100, 768, blocks=4, seed=0, scale=0.11)
    p_val, y_val = blobs(args.train // 4, 100, 768, blocks=4, seed=1, scale=0.11)
    what = (
        f"{args.train:,} train + {args.train // 4:,} val, 100 classes, synthetic Gaussian blobs "
        "(class centre per block + unit noise); lastPOOL 768-d, concatPOOL4 3,072-d, float16"
    )
    return _reps(p_train), y_train, _reps(p_val), y_val, 100, what


def synth_classes(workdir: Path, classes: int, per_class: int, val_per_class: int) -> Path:
    """`data synth-classes` at 64 px, seed 0, in ``workdir`` (kept: a rerun finds it made).
    The benchmarks that encode real features with the bundled model share these images."""
    from ijepa_eval.data.synth.classes import generate_classes

    root = workdir / f"synth-classes-{classes}x{per_class}"
    generate_classes(
        root,
        classes=classes,
        per_class=per_class,
        val_per_class=val_per_class,
        size=64,
        seed=0,
        progress=False,
    )
    return root


def encoder_features(args) -> tuple[dict, torch.Tensor, list[str], dict, torch.Tensor]:
    """Real encoder features: the bundled model on `data synth-classes` images (made here).

    Unlike blobs they are as badly conditioned as real ViT features, which is what costs
    L-BFGS its iterations. One set of `--pool-per-class` training images per class is made and
    encoded (through the feature cache, so reruns hit it); each training size is its first N
    images of every class (images are seeded per item, so smaller sets are nested in larger).
    """
    from ijepa_eval.data import load_dataset
    from ijepa_eval.features import extract
    from ijepa_eval.models.loading import load_encoder

    pool = args.pool_per_class or max(args.per_class)
    root = synth_classes(args.workdir, args.classes, pool, args.val_per_class)
    encoder = load_encoder("ijepa_tiny_synth")
    out = []
    for split in ("train", "val"):
        dataset = load_dataset("imagefolder", root, split)
        feats = extract(
            encoder, dataset, layers="last4", cache_dir=args.workdir / "cache", progress=False
        )
        out.append((_reps(feats.pooled()), torch.as_tensor(feats.labels), dataset.ids()))
    (train, y_train, ids), (val, y_val, _) = out
    return train, y_train, ids, val, y_val


def encoder_reps(args, per_class: int, cached: tuple) -> tuple:
    """The first `per_class` training images of each class and the whole validation split."""
    train, y_train, ids, val, y_val = cached
    index = torch.tensor([int(Path(i).stem.split("_")[-1]) for i in ids])
    keep = torch.nonzero(index < per_class).flatten()
    train = {rep: x[keep] for rep, x in train.items()}
    what = (
        f"{len(keep):,} train ({per_class} per class) + {len(y_val):,} val images of `data "
        f"synth-classes` ({args.classes} classes, 64 px, seed 0), encoded by the bundled "
        "`ijepa_tiny_synth` (ViT-Ti/8): real encoder features of synthetic images; lastPOOL "
        "192-d, concatPOOL4 768-d, float16 as cached"
    )
    return train, y_train[keep], val, y_val, args.classes, what


def _reps(pooled: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"lastPOOL": pooled[:, -1], "concatPOOL4": pooled.flatten(1)}


def grid_variant(text: str) -> dict[str, object]:
    """``"min_steps=3000,momentum=0.99"`` -> LinearGridConfig overrides ("" = its defaults)."""
    items = [item for item in re.split(r",(?![^\[]*\])", text) if item]  # not inside [...]
    return parse_assignments(items, "--grid")


def bench_grid(args) -> list[str]:
    if args.features == "blobs":
        return bench_grid_on(args, *blob_reps(args))
    cached = encoder_features(args)
    lines: list[str] = []
    for per_class in args.per_class:
        lines += bench_grid_on(args, *encoder_reps(args, per_class, cached))
        lines.append("")
    return lines


def bench_grid_on(args, train, y_train, val, y_val, classes, what) -> list[str]:
    n = len(y_train)
    configs = {
        text or "defaults": LinearGridConfig(**{"weight_decays": (0.0,), **grid_variant(text)})
        for text in args.grid
    }

    def ours(cfg):
        return linear_grid(train, y_train, val, y_val, num_classes=classes, config=cfg)

    if args.sk_c:
        sample = np.array(args.sk_c)
    else:
        sample = SK_CS[np.linspace(0, len(SK_CS) - 1, args.sk_sample).round().astype(int)]
    pairs = [(rep, head) for rep in train for head in ("linear", "bn_linear")]
    fitted = [tuple(p.split(":")) for p in args.sk_only or [] if p != "chosen"] or pairs

    def sklearn_sample(max_iter: int, space: str):
        """The fits in the features' own coordinates ("raw") or in the grid's `Whitening` of
        them ("whitened": the same linear models, a penalty measured there; it converges)."""
        fits = []
        for rep in train:
            x, xv = train[rep].float(), val[rep].float()
            if space == "whitened":
                white = Whitening.fit(x, LinearGridConfig().whiten_ridge)
                x, xv = white(x), white(xv)
            x, xv = x.numpy(), xv.numpy()
            for head in ("linear", "bn_linear"):
                if (rep, head) not in fitted:
                    continue
                for C in sample:
                    clf = LogisticRegression(C=C, max_iter=max_iter)
                    model = make_pipeline(StandardScaler(), clf) if head == "bn_linear" else clf
                    seconds, _ = timed(lambda model=model, x=x: model.fit(x, y_train.numpy()))
                    acc = 100 * model.score(xv, y_val.numpy())
                    fits.append((rep, head, C, seconds, acc, clf.n_iter_[0]))
        return fits

    before = {name: timed(lambda cfg=cfg: ours(cfg)) for name, cfg in configs.items()}
    if args.sk_only == ["chosen"]:  # the pair the last variant chose
        chosen = list(before.values())[-1][1].best
        fitted = [(chosen["representation"], chosen["head"])]
    sk = {
        f"{space}, max_iter {max_iter}": sklearn_sample(max_iter, space)
        for space in args.sk_space
        for max_iter in args.sk_max_iter
    }
    after = {
        name: before[name][0] if args.ours_once else timed(lambda cfg=cfg: ours(cfg))[0]
        for name, cfg in configs.items()
    }

    lines = [
        "### (a) Linear grid: all heads in one pass vs scikit-learn fitting 52 configurations",
        "",
        f"- features: {what}",
        "- ours: `linear_grid`, 2 reps x 2 heads x 13 lrs (DINOv2's) x wd 0 x the variant's "
        "coordinates (default: raw and whitened, 104 heads), SGD, "
        "cosine, batch 1024, validation included; each variant's `LinearGridConfig` overrides "
        "are in its row; "
        + (
            "timed once"
            if args.ours_once
            else "timed before and after the scikit-learn fits, median"
        ),
        "- scikit-learn: `LogisticRegression(C=C, max_iter=M)` (lbfgs, tol 1e-4), bn_linear as "
        "`StandardScaler()` + it; 13 C values (1e-4 ... 1e2) per (rep, head), of which "
        f"C = {', '.join(f'{c:g}' for c in sample)} fitted and timed for "
        f"{', '.join(f'{r} {h}' for r, h in fitted)}; each fitted (rep, head) charged 13 x "
        "their mean, each other (rep, head) 13 x the mean of all fits",
        "",
        "| fit | representation | head | C | fit s | iterations | val top-1 % |",
        "|---|---|---|---|---|---|---|",
    ]
    sk_rows = {}
    for max_iter, fits in sk.items():
        lines += [
            f"| {max_iter} | {r} | {h} | {c:g} | {s:.1f} | {it} | {a:.2f} |"
            for r, h, c, s, a, it in fits
        ]
        overall = np.mean([f[3] for f in fits])
        t_sk = sum(
            13 * (np.mean([f[3] for f in fits if f[:2] == key]) if key in fitted else overall)
            for key in pairs
        )
        t_measured = sum(f[3] for f in fits)
        best = max(fits, key=lambda f: f[4])
        sk_rows[max_iter] = (t_sk, t_measured, best)
    lines += [
        "",
        "| ours | steps | batch | wall s | best val top-1 % | vs scikit-learn | sklearn wall s "
        "(52 charged / fits made) | sklearn best val top-1 % | ratio (charged / made) | points |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cfg in configs.items():
        (t1, grid), t2 = before[name], after[name]
        t_ours = float(np.median([t1, t2]))
        b = grid.best
        for max_iter, (t_sk, t_made, best) in sk_rows.items():
            lines.append(
                f"| `{name}` | {cfg.steps(n)} | {cfg.batch(n)} | {t_ours:.1f} | "
                f"{b['val_top1']:.2f} ({_head(b)}) | "
                f"{max_iter} | {t_sk:.1f} / {t_made:.1f} | {best[4]:.2f} ({best[0]}, "
                f"{best[1]}, C {best[2]:g}) | **{t_sk / t_ours:.1f}x** / {t_made / t_ours:.1f}x | "
                f"{b['val_top1'] - best[4]:+.2f} |"
            )
    lines.append("")
    for name, (_, grid) in before.items():
        parts = []
        for whiten in (False, True):
            rows = [r for r in grid.rows if r.get("whiten", False) == whiten]
            if rows:
                top = max(rows, key=lambda r: r["val_top1"])
                parts.append(f"{'whitened' if whiten else 'as they are'}: {top['val_top1']:.2f}")
        lines.append(f"- `{name}`: {len(grid.rows)} heads; best {'; '.join(parts)}")
    return lines


def _head(row: dict) -> str:
    white = "whitened, " if row.get("whiten") else ""
    return f"{row['representation']}, {white}{row['head']}, lr {row['lr']:g}"


def objective(x: torch.Tensor, y: torch.Tensor, w, b, C: float) -> float:
    w, b = torch.as_tensor(w, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    loss = F.cross_entropy(x.double() @ w.T + b, y, reduction="sum")
    return (C * loss + 0.5 * w.square().sum()).item()


def bench_logreg(args) -> list[str]:
    p, y = blobs(args.logreg_train, 100, 768, blocks=1, seed=2, scale=0.16)
    pt, yt = blobs(5000, 100, 768, blocks=1, seed=3, scale=0.16)
    x, xt = p[:, 0].float(), pt[:, 0].float()
    rows = []
    for C in (1e-2, 1.0):
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.repeats):
            t, ours = timed(lambda C=C: logreg_fit(x, y, C=C, num_classes=100))
            times[0].append(t)
            sk = LogisticRegression(C=C, max_iter=1000, tol=1e-6)
            t, _ = timed(lambda sk=sk: sk.fit(x.numpy(), y.numpy()))
            times[1].append(t)
        agree = 100 * (ours.predict(xt).numpy() == sk.predict(xt.numpy())).mean()
        obj = objective(x, y, ours.linear.weight, ours.linear.bias, C)
        obj_sk = objective(x, y, sk.coef_, sk.intercept_, C)
        t_o, t_s = np.median(times[0]), np.median(times[1])
        rows.append(
            f"| {C:g} | {t_o:.2f} | {t_s:.2f} | {t_s / t_o:.2f}x | {agree:.2f} | "
            f"{obj:.2f} / {obj_sk:.2f} | {sk.n_iter_[0]} |"
        )
    return [
        "### (b) `logreg_fit` vs scikit-learn at equal C",
        "",
        f"- {args.logreg_train:,} x 768 float32 features, 100 classes; agreement on 5,000 test "
        f"points; median of {args.repeats} alternating runs; scikit-learn "
        "`LogisticRegression(C=C, max_iter=1000, tol=1e-6)` and ours (default tol 1e-6) stop on "
        "the same rule: max |gradient| of the mean objective (scikit-learn's scaling) <= 1e-6; "
        "objective = C x sum of log-losses + ||W||^2 / 2 (lower is better)",
        "",
        "| C | ours s | scikit-learn s | ratio | agreement % | objective ours / sklearn "
        "| sklearn iterations |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def sklearn_knn(train, train_y, test, test_y, ks, temperature, num_classes):
    nn = NearestNeighbors(n_neighbors=max(ks), metric="cosine", algorithm="brute").fit(train)
    dist, idx = nn.kneighbors(test)
    weights = np.exp((1 - dist) / temperature)
    out = {}
    for k in ks:
        votes = np.zeros((len(test), num_classes))
        np.add.at(votes, (np.arange(len(test))[:, None], train_y[idx[:, :k]]), weights[:, :k])
        out[k] = classification_metrics(
            torch.from_numpy(votes), torch.from_numpy(test_y), num_classes
        )["top1"]
    return out


def bench_knn(args) -> list[str]:
    p, y = blobs(args.knn_train, 1000, 1280, blocks=1, seed=4, scale=0.3)
    pt, yt = blobs(args.knn_test, 1000, 1280, blocks=1, seed=5, scale=0.3)
    train, test = p[:, 0], pt[:, 0]
    ks = (10, 20, 100, 200)
    train32, test32 = train.float().numpy(), test.float().numpy()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(args.knn_repeats):
        t, ours = timed(lambda: knn_eval(train, y, test, yt, num_classes=1000, ks=ks))
        times[0].append(t)
        t, theirs = timed(
            lambda: sklearn_knn(train32, y.numpy(), test32, yt.numpy(), ks, 0.07, 1000)
        )
        times[1].append(t)
    t_o, t_s = np.median(times[0]), np.median(times[1])
    tops = ", ".join(f"k={k}: {ours[k]['top1']:.2f} / {theirs[k]:.2f}" for k in ks)
    return [
        '### (c) k-NN vs scikit-learn NearestNeighbors(metric="cosine")',
        "",
        f"- {args.knn_train:,} train x 1,280-d (float16, as cached), {args.knn_test:,} test, "
        f"1,000 classes; k = 10, 20, 100, 200, T = 0.07; ours: `knn_eval` (chunk 4096 test rows "
        f"x 65,536 train rows); scikit-learn: brute-force cosine `kneighbors(k=200)` on float32 "
        f"plus the same weighted vote in numpy; median of {args.knn_repeats} alternating runs",
        "",
        "| measurement | ours | scikit-learn | ratio |",
        "|---|---|---|---|",
        f"| wall s, all four k | {t_o:.1f} | {t_s:.1f} | {t_s / t_o:.2f}x |",
        f"| top-1 % ours / sklearn | {tops} | | |",
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--sk-sample", type=int, default=3, help="C values fitted per rep/head")
    p.add_argument("--logreg-train", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--knn-train", type=int, default=100000)
    p.add_argument("--knn-test", type=int, default=2000)
    p.add_argument("--knn-repeats", type=int, default=2)
    p.add_argument("--only", choices=["grid", "logreg", "knn"], nargs="*", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch and BLAS threads, both")
    p.add_argument(
        "--grid",
        action="append",
        help='a grid variant, LinearGridConfig overrides like "min_steps=3000,momentum=0.99" '
        '("" = defaults); repeat to compare several in one run',
    )
    p.add_argument("--features", choices=["blobs", "encoder"], default="blobs")
    p.add_argument("--sk-max-iter", type=int, nargs="+", default=[100], help="its max_iter(s)")
    p.add_argument(
        "--sk-space",
        choices=["raw", "whitened"],
        nargs="+",
        default=["raw"],
        help="scikit-learn on the features as they are, and/or in the grid's Whitening of them",
    )
    p.add_argument("--workdir", type=Path, default=Path("/tmp/ijepa-eval-bench"))
    p.add_argument("--classes", type=int, default=72, help="encoder features: classes")
    p.add_argument(
        "--per-class",
        type=int,
        nargs="+",
        default=[150],
        help="encoder features: training images per class; several = several training sizes, "
        "each the first N images per class of one generated set",
    )
    p.add_argument("--pool-per-class", type=int, default=None, help="generated (>= per-class)")
    p.add_argument("--val-per-class", type=int, default=None, help="default: pool / 4")
    p.add_argument("--ours-once", action="store_true", help="time the grid once, not twice")
    p.add_argument("--sk-c", type=float, nargs="+", default=None, help="C values (not sampled)")
    p.add_argument(
        "--sk-only",
        nargs="+",
        default=None,
        help="fit scikit-learn only for these REP:HEAD pairs (e.g. concatPOOL4:bn_linear), or "
        "`chosen`: the pair the last --grid variant chose",
    )
    args = p.parse_args()
    args.grid = args.grid or ["epochs=10,min_steps=0"]
    warnings.simplefilter("ignore", ConvergenceWarning)
    parts = {"grid": bench_grid, "logreg": bench_logreg, "knn": bench_knn}
    load, start = os.getloadavg(), time.perf_counter()
    with threadpool_limits(args.threads):
        if args.threads:
            torch.set_num_threads(args.threads)
        sections = [fn(args) for name, fn in parts.items() if not args.only or name in args.only]
    total = time.perf_counter() - start
    device = "cuda" if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print(f"## Probes vs scikit-learn ({args.features} features)")
    print()
    print(
        f"- machine: {platform.machine()} {device}, threads {args.threads or 'default'}; "
        f"load average before / after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} (shared)"
    )
    print(
        f"- date: {datetime.date.today()}; torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, numpy {np.__version__}"
    )
    print(
        f"- command: `.venv/bin/python benchmarks/bench_probes.py {shlex.join(sys.argv[1:])}` "
        f"({total:.0f} s)"
    )
    for section in sections:
        print()
        print("\n".join(section))


if __name__ == "__main__":
    main()
