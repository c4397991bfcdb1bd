"""The seed MLP's two large products, one thread, in numpy (OpenBLAS) and PyTorch (MKL):
the forward x·W1 (32×784 · 784×128) and the weight gradient xᵀ·g (784×32 · 32×128), as
`cargo bench -p tapegrad-core --bench core -- seedmm` times them in tapegrad (run both with
one thread: `RAYON_NUM_THREADS=1`; this script sets OpenBLAS's and torch's).

    OPENBLAS_NUM_THREADS=1 $HOME/.cache/tapegrad-peers/venv/bin/python scripts/seed_products.py
"""
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 784), dtype=np.float32)
w = rng.standard_normal((784, 128), dtype=np.float32)
g = rng.standard_normal((32, 128), dtype=np.float32)
tx, tw, tg = map(torch.from_numpy, (x, w, g))


def median_us(f, n=2000):
    for _ in range(50):
        f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e6


flop = 2 * 32 * 784 * 128
for lib, shape, f in [
    ("numpy", "x_w1", lambda: x @ w),
    ("numpy", "xt_g1", lambda: x.T @ g),
    ("torch", "x_w1", lambda: tx @ tw),
    ("torch", "xt_g1", lambda: tx.T @ tg),
]:
    us = median_us(f)
    print(f"RESULT framework={lib} bench=seed_product shape={shape} median_us={us:.2f} gflops={flop / us / 1e3:.1f} threads=1")
