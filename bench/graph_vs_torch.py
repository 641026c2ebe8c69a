"""Checks and times PyTorch's double-backward Hessian-vector product on the net, weights,
data and directions that `hspec_bench_graph --dump FILE` wrote, against hspec's products.

    /root/venv-torch/bin/python bench/graph_vs_torch.py FILE [--dtype float32|float64] [--reps R]

Prints the relative difference of the products and of the gradient, and the median ms of
(a) a full product (forward, gradient with create_graph, backward of g.v) and (b) the
second backward alone on a retained graph, for one direction and for a block of 8 (8
backward passes), per product: wall and process CPU time.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from safetensors import safe_open


def double_backward(loss_fn, params, dirs, reps, products, gradient):
    """PyTorch's Hessian-vector products the PyHessian way (gradient with create_graph, then
    the gradient of g.v) for the rows of `dirs`, checked against hspec's `products` and
    `gradient` (flat, in `params`' order), and timed: median ms per product of (a) a full
    product (forward, gradient, backward of g.v) and (b) the second backward alone on a
    retained graph, for one direction and for a block of 8 (8 backward passes), as wall and
    process CPU time (the latter less disturbed on a shared machine)."""

    def split(vec):
        out, at = [], 0
        for p in params:
            out.append(vec[at:at + p.numel()].view_as(p))
            at += p.numel()
        return out

    loss = loss_fn()
    g = torch.autograd.grad(loss, params, create_graph=True)
    gflat = torch.cat([v.reshape(-1) for v in g]).detach().double()
    hv = []
    for j in range(dirs.shape[0]):
        r = torch.autograd.grad(g, params, grad_outputs=split(dirs[j]), retain_graph=True)
        hv.append(torch.cat([v.reshape(-1) for v in r]).detach().double())
    hv = torch.stack(hv)
    rel = lambda u, v: float((u - v).norm() / v.norm())
    res = {"loss_torch": float(loss.detach()),
           "rel_diff_products": rel(products.double(), hv),
           "rel_diff_gradient": rel(gradient.double(), gflat)}

    def median_ms(fn, k):
        wall, cpu = [], []
        fn()  # warm-up
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu.append(1e3 * (time.process_time() - c0) / k)
            wall.append(1e3 * (time.perf_counter() - t0) / k)
        return sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2]

    def full(k):
        l = loss_fn()
        gg = torch.autograd.grad(l, params, create_graph=True)
        for j in range(k):
            torch.autograd.grad(gg, params, grad_outputs=split(dirs[j]), retain_graph=j + 1 < k)

    def second(k):
        for j in range(k):
            torch.autograd.grad(g, params, grad_outputs=split(dirs[j]), retain_graph=True)

    for k in (1, 8):
        res[f"full_block{k}_wall_cpu_ms_per_product"] = median_ms(lambda: full(k), k)
        res[f"second_backward_block{k}_wall_cpu_ms_per_product"] = median_ms(lambda: second(k), k)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dt = getattr(torch, a.dtype)
    t = load_file(a.file)
    with safe_open(a.file, "pt") as f:
        order = f.metadata()["parameters"].split(",")
    params = [t[n].to(dt).clone().requires_grad_(True) for n in order]
    P = dict(zip(order, params))
    const = {k: v.to(dt) for k, v in t.items()}
    x = t["inputs"].to(dt)
    y = t["labels"].long()

    def conv_bn(h, name):
        h = F.conv2d(h, P[name + ".conv.weight"], padding=1)
        return F.batch_norm(h, const[name + ".bn.running_mean"], const[name + ".bn.running_var"],
                            P[name + ".bn.weight"], P[name + ".bn.bias"], training=False, eps=1e-5)

    def loss_fn():
        a1 = F.relu(conv_bn(x, "stem"))
        a2 = F.relu(conv_bn(a1, "block.0"))
        a3 = F.relu(conv_bn(a2, "block.1") + a1)
        h = F.max_pool2d(a3, 2, 2).mean(dim=(2, 3))
        return F.cross_entropy(F.linear(h, P["fc.weight"], P["fc.bias"]), y)

    dirs = t["directions"].to(dt)
    res = {"dtype": a.dtype, "threads": torch.get_num_threads(), "samples": int(x.shape[0])}
    res.update(double_backward(loss_fn, params, dirs, a.reps, t["products"], t["gradient"]))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
