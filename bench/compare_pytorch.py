#!/usr/bin/env python3
"""hspec against PyTorch on one CPU, side by side: one Hessian-vector product and top-5 eigenvalues.

Needs a Python with torch, numpy and safetensors (e.g. /root/venv-torch/bin/python); never
needed by CI or the tests. Uses the `pyhessian` package when it imports (PyPI's 0.1), else a
faithful copy of its power iteration (same algorithm and defaults), and says which ran.

What it does, all at the same thread count (--threads, default 2):
  1. Makes the checkpoint (seeded): the 784-512-512-10 GELU MLP, PyTorch default init, trained
     a few epochs (Adam) on the first --samples Fashion-MNIST training images.
  2. PyTorch: one double-backward Hessian-vector product, PyHessian's way (the gradient with
     create_graph=True once, then grad of (g . v) per product, graph cached): median time.
  3. PyHessian top-5 (power iteration with deflation, maxIter 100, tol 1e-3): time, products.
  4. hspec: `hspec analyze --top 5 --bottom 1` (default tolerance) and `--top 5 --tol 1e-3`
     (fp32), the fp64 reference lambda_max, hspec_bench's single-product time, and
     hspec_bench_solver's split of a solver run between products and the solver's algebra.
  5. The GEMM rates (hspec_bench_gemm) of the BLAS hspec links and of the best library found.
Prints the ratios and each method's lambda_max error against hspec's fp64 value.

  /root/venv-torch/bin/python bench/compare_pytorch.py --threads 2 --samples 4096 --build build
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def make_model():
    return nn.Sequential(nn.Linear(784, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                         nn.Linear(512, 10))


def train(x, y, epochs, seed):
    torch.manual_seed(seed)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


def power_iteration_top(gradsH, params, top_n, max_iter, tol, seed):
    """PyHessian 0.1's hessian.eigenvalues(), line for line (single batch, graph cached)."""
    torch.manual_seed(seed)

    def dot(xs, ys):
        return sum(torch.sum(a * b) for a, b in zip(xs, ys))

    def normalization(v):
        s = torch.sqrt(dot(v, v))
        return [vi / (s + 1e-6) for vi in v]

    def orthnormal(w, v_list):
        for v in v_list:
            w = [wi - dot(w, v) * vi for wi, vi in zip(w, v)]
        return normalization(w)

    eigenvalues, eigenvectors, products = [], [], 0
    while len(eigenvalues) < top_n:
        eigenvalue = None
        v = normalization([torch.randn(p.size()) for p in params])
        for _ in range(max_iter):
            v = orthnormal(v, eigenvectors)
            Hv = torch.autograd.grad(gradsH, params, grad_outputs=v, only_inputs=True,
                                     retain_graph=True)
            products += 1
            tmp = dot(Hv, v).item()
            v = normalization(Hv)
            if eigenvalue is not None and abs(eigenvalue - tmp) / (abs(eigenvalue) + 1e-6) < tol:
                break
            eigenvalue = tmp
        eigenvalues.append(eigenvalue)
        eigenvectors.append(v)
    return eigenvalues, products


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True)
    if out.returncode not in (0, 4):
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    if out.stderr.strip():
        print(out.stderr.strip(), file=sys.stderr)
    try:  # hspec analyze --json -: one (pretty-printed) document
        return [json.loads(out.stdout)]
    except json.JSONDecodeError:  # the benchmarks: one JSON object per line
        return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build", default="build", help="hspec's CMake build directory")
    ap.add_argument("--workdir", default="/tmp/hspec_compare")
    ap.add_argument("--reps", type=int, default=10, help="timed PyTorch products")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    os.makedirs(a.workdir, exist_ok=True)
    images = os.path.join(DATA, "train-images-idx3-ubyte.gz")
    labels = os.path.join(DATA, "train-labels-idx1-ubyte.gz")
    x = torch.from_numpy(read_idx(images)[:a.samples].reshape(a.samples, 784).astype(np.float32)
                         / np.float32(255.0))
    y = torch.from_numpy(read_idx(labels)[:a.samples].astype(np.int64))

    ckpt = os.path.join(a.workdir, f"mlp_gelu_{a.samples}_s{a.seed}.safetensors")
    model = train(x, y, a.epochs, a.seed)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, ckpt,
              metadata={"hspec.activation": "gelu"})
    print(f"checkpoint {ckpt}: 669,706 parameters, {a.samples} samples, {a.threads} threads, "
          f"torch {torch.__version__}")

    hspec = os.path.join(a.build, "hspec")
    base = [hspec, "analyze", "--model", ckpt, "--data", images, "--labels", labels,
            "--samples", str(a.samples), "--threads", str(a.threads), "--json", "-"]
    t0 = time.perf_counter()
    h_default = run_json(base + ["--top", "5", "--bottom", "1"], env)[0]
    h_default_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    h_loose = run_json(base + ["--top", "5", "--tol", "1e-3"], env)[0]
    h_loose_wall = time.perf_counter() - t0
    ref = run_json(base + ["--top", "1", "--bottom", "0", "--precision", "fp64", "--tol", "1e-8"],
                   env)[0]
    lam = ref["top"][0]["value"]
    bench = run_json([os.path.join(a.build, "bench", "hspec_bench"), "--workload", "mlp_small",
                      "--samples", str(a.samples), "--blocks", "1", "--reps", "5", "--threads",
                      str(a.threads)], env)[0]
    print(f"hspec: lambda_max fp64 {lam:.9g}; --top 5 --bottom 1 {h_default['seconds']:.2f} s, "
          f"--top 5 --tol 1e-3 {h_loose['seconds']:.2f} s; one product "
          f"{bench['ms_per_hvp']:.1f} ms", flush=True)
    # The same solver run split between products and the solver's vector algebra.
    split = run_json([os.path.join(a.build, "bench", "hspec_bench_solver"), "--activation",
                      "gelu", "--samples", str(a.samples), "--threads", str(a.threads)], env)[0]
    gemm = run_json([os.path.join(a.build, "bench", "hspec_bench_gemm"), "--threads",
                     str(a.threads)], env)

    # PyTorch double-backward product, PyHessian's way: graph built once, cached.
    params = [p for p in model.parameters()]
    model.eval()
    loss = nn.CrossEntropyLoss()(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn_like(p) for p in params]
    times = []
    for r in range(a.reps + 2):
        t0 = time.perf_counter()
        torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        if r >= 2:
            times.append(time.perf_counter() - t0)
    torch_hvp = statistics.median(times)
    print(f"PyTorch double-backward product: {torch_hvp * 1e3:.1f} ms (median of {a.reps})",
          flush=True)

    try:
        from pyhessian import hessian as PyHessian  # noqa: N812
        which = "pyhessian 0.1 (PyPI)"
        torch.manual_seed(a.seed)
        model.zero_grad()
        t0 = time.perf_counter()
        hc = PyHessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        counter = {"n": 0}
        ph = sys.modules["pyhessian.hessian"]  # the module; the package exports the class
        inner = ph.hessian_vector_product

        def counted(*args):
            counter["n"] += 1
            return inner(*args)

        ph.hessian_vector_product = counted
        top, _ = hc.eigenvalues(maxIter=100, tol=1e-3, top_n=5)
        ph_time, ph_products = time.perf_counter() - t0, counter["n"]
    except ImportError:
        which = "PyHessian's algorithm re-implemented (pyhessian not importable)"
        t0 = time.perf_counter()
        top, ph_products = power_iteration_top(grads, params, 5, 100, 1e-3, a.seed)
        ph_time = time.perf_counter() - t0
    print(f"PyHessian top-5: {ph_time:.1f} s, {ph_products} products", flush=True)

    hspec_hvp = bench["ms_per_hvp"] / 1e3
    print(f"\nkernels: {h_default.get('cpu_kernels')}")
    print(f"one product: PyTorch double-backward {torch_hvp * 1e3:.1f} ms, hspec "
          f"{hspec_hvp * 1e3:.1f} ms (hspec_bench mlp_small, {bench['fraction_of_gemm']:.2f} "
          f"of its sgemm {bench['gemm_gflops']:.0f} GFLOP/s): ratio hspec/PyTorch "
          f"{hspec_hvp / torch_hvp:.2f}")
    rows = [
        (f"PyHessian top-5 ({which})", ph_time, ph_products, top[0]),
        ("hspec analyze --top 5 --bottom 1", h_default["seconds"], h_default["hvps"],
         h_default["top"][0]["value"]),
        ("hspec analyze --top 5 --tol 1e-3", h_loose["seconds"], h_loose["hvps"],
         h_loose["top"][0]["value"]),
    ]
    print(f"lambda_max reference: hspec fp64 {lam:.9g} (tol 1e-8, {ref['hvps']} products)")
    print(f"{'method':58s} {'seconds':>8s} {'products':>8s} {'lambda_max':>12s} "
          f"{'rel.err':>9s} {'time/PyHessian':>14s}")
    for name, sec, n, l1 in rows:
        print(f"{name:58s} {sec:8.2f} {n:8d} {l1:12.6g} {abs(l1 - lam) / abs(lam):9.2e} "
              f"{sec / ph_time:14.3f}")
    print(f"(hspec process wall times incl. loading: {h_default_wall:.2f} s, "
          f"{h_loose_wall:.2f} s)")
    print(f"per product inside analyze (wall, loading included): "
          f"{h_default['seconds'] / h_default['hvps'] * 1e3:.0f} ms (--top 5 --bottom 1), "
          f"{h_loose['seconds'] / h_loose['hvps'] * 1e3:.0f} ms (--tol 1e-3), against "
          f"{hspec_hvp * 1e3:.0f} ms in hspec_bench")
    algebra = sum(split[k]["wall_ms_per_product"] for k in split
                  if isinstance(split[k], dict) and k != "product")
    print(f"hspec_bench_solver (mlp_small gelu, {split['products']} products): per product "
          f"{split['product']['wall_ms_per_product']:.0f} ms in products, {algebra:.0f} ms "
          f"in the solver's algebra and the rest (wall)")
    print("PyHessian top-5 eigenvalues:", ", ".join(f"{t:.6g}" for t in top))
    print("hspec top-5 eigenvalues:   ",
          ", ".join(f"{t['value']:.6g}" for t in h_default["top"]))
    linked = [g for g in gemm if g["library"].startswith("linked") and g["precision"] == "fp32"]
    best = max((g for g in gemm if g["precision"] == "fp32"), key=lambda g: g["product_mix"])
    print(f"sgemm at the product's shapes: linked {linked[0]['library'][8:]} "
          f"{linked[0]['product_mix']:.0f} GFLOP/s; best found {best['library']} "
          f"{best['product_mix']:.0f} GFLOP/s")
    for g in gemm:
        print(f"  {g['precision']} {g['library']}: product mix {g['product_mix']:.0f}, "
              f"2048^3 {g['NN 2048x2048x2048']:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
