"""Probe speed against scikit-learn on the same synthetic features, in one run.

    python benchmarks/bench_probes.py [--train 10000] [--knn-train 100000] [--knn-test 2000]

(a) The linear grid: 2 representations (lastPOOL 768-d, concatPOOL4 3072-d) x {linear,
    bn_linear} x DINOv2's 13 lrs = 52 heads in one pass (--epochs, batch 1024, SGD), against
    scikit-learn's LogisticRegression(lbfgs, defaults) fitting 52 configurations (the same 2 x 2,
    bn_linear as StandardScaler + LR, x 13 C values). Fitting all 52 would take most of the time
    budget, so `--sk-sample` C values per (representation, head) are fitted and timed, and each
    (representation, head) is charged 13 x their mean; the table says which fits were measured.
(b) `logreg_fit` against LogisticRegression(lbfgs, max_iter=1000, tol=1e-6) at equal C and the
    same stopping rule.
(c) k-NN (k = 10, 20, 100, 200, T = 0.07) against NearestNeighbors(metric="cosine", brute force)
    plus the same weighted vote in numpy.

Features are synthetic and honestly labelled: Gaussian class centres plus unit noise, stored in
float16 as the cache stores them. Compared runs alternate and medians are taken, because the
machine may be shared; `--threads N` caps torch and BLAS threads for both sides alike (on a busy
2-core machine two threads stall at OpenMP barriers). Prints a Markdown section for
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings
from collections.abc import Callable

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
from ijepa_eval.probes.logreg import logreg_fit

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


def bench_grid(args) -> list[str]:
    p_train, y_train = blobs(args.train, 100, 768, blocks=4, seed=0, scale=0.11)
    p_val, y_val = blobs(args.train // 4, 100, 768, blocks=4, seed=1, scale=0.11)

    def reps(p):
        return {"lastPOOL": p[:, -1], "concatPOOL4": p.flatten(1)}

    train, val = reps(p_train), reps(p_val)
    cfg = LinearGridConfig(
        weight_decays=(0.0,),
        epochs=args.epochs,
        min_steps=0,
        batch_size=1024,
        matmul_dtype=args.matmul_dtype,
    )

    def ours():
        return linear_grid(train, y_train, val, y_val, num_classes=100, config=cfg)

    sample = SK_CS[np.linspace(0, len(SK_CS) - 1, args.sk_sample).round().astype(int)]

    def sklearn_sample():
        fits = []
        for rep in train:
            x, xv = train[rep].float().numpy(), val[rep].float().numpy()
            for head in ("linear", "bn_linear"):
                for C in sample:
                    clf = LogisticRegression(C=C)
                    model = make_pipeline(StandardScaler(), clf) if head == "bn_linear" else clf
                    seconds, _ = timed(lambda model=model, x=x: model.fit(x, y_train.numpy()))
                    fits.append((rep, head, C, seconds, 100 * model.score(xv, y_val.numpy())))
        return fits

    t1, grid = timed(ours)
    fits = sklearn_sample()
    t2, _ = timed(ours)
    t_ours = float(np.median([t1, t2]))
    t_sk = sum(
        13 * np.mean([f[3] for f in fits if f[:2] == key]) for key in {(f[0], f[1]) for f in fits}
    )
    best_sk = max(fits, key=lambda f: f[4])
    steps = cfg.steps(args.train)
    lines = [
        f"### (a) Linear grid: {len(grid.rows)} heads in one pass vs scikit-learn",
        "",
        f"- features: {args.train:,} train + {args.train // 4:,} val, 100 classes; lastPOOL 768-d "
        f"and concatPOOL4 3,072-d (float16, synthetic Gaussian blobs)",
        f"- ours: `linear_grid`, 2 reps x 2 heads x 13 lrs (DINOv2's) x wd 0 = "
        f"{len(grid.rows)} heads, SGD momentum 0.9, cosine, batch 1024, {args.epochs} epochs "
        f"({steps} steps), {args.matmul_dtype} GEMMs, validation included; "
        f"runs: {t1:.1f} s, {t2:.1f} s (before and after "
        f"the scikit-learn fits)",
        "- scikit-learn: `LogisticRegression()` (lbfgs, tol 1e-4, max_iter 100: its defaults), "
        "bn_linear as `StandardScaler()` + it; measured fits (rep, head, C, seconds, val top-1):",
        "",
        "| representation | head | C | fit + score s | val top-1 % |",
        "|---|---|---|---|---|",
        *[f"| {r} | {h} | {c:g} | {s:.1f} | {a:.2f} |" for r, h, c, s, a in fits],
        "",
        "| measurement | ours | scikit-learn | ratio |",
        "|---|---|---|---|",
        f"| 52 configurations, wall s | {t_ours:.1f} | {t_sk:.1f} (13 x mean per rep/head) | "
        f"**{t_sk / t_ours:.1f}x** faster |",
        f"| best val top-1 % | {grid.best['val_top1']:.2f} ({grid.best['representation']}, "
        f"{grid.best['head']}, lr {grid.best['lr']:g}) | {best_sk[4]:.2f} ({best_sk[0]}, "
        f"{best_sk[1]}, C {best_sk[2]:g}) | |",
    ]
    return lines


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
    p.add_argument("--matmul-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--epochs", type=int, default=10, help="linear grid epochs")
    args = p.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    parts = {"grid": bench_grid, "logreg": bench_logreg, "knn": bench_knn}
    load, start = os.getloadavg(), time.perf_counter()
    with threadpool_limits(args.threads):
        if args.threads:
            torch.set_num_threads(args.threads)
        sections = [fn(args) for name, fn in parts.items() if not args.only or name in args.only]
    total = time.perf_counter() - start
    device = "cuda" if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print("## Probes vs scikit-learn (synthetic features)")
    print()
    print(
        f"- machine: {platform.machine()} {device}, threads {args.threads or 'default'}; "
        f"load average before / after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} (shared)"
    )
    print(
        f"- date: {datetime.date.today()}; torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, numpy {np.__version__}"
    )
    flags = " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if v
    )
    print(f"- command: `.venv/bin/python benchmarks/bench_probes.py {flags}` ({total:.0f} s)")
    for section in sections:
        print()
        print("\n".join(section))


if __name__ == "__main__":
    main()
