"""Side by side on one exported transformer: hspec's Hessian-vector product (hspec_bench_graph
on the .onnx) against PyTorch's double-backward product on the same model code (the classes
of tests/fixtures/make_transformer_fixtures.py), weights, data, directions and threads.

    /root/venv-torch/bin/python bench/transformer_vs_torch.py \\
        tests/fixtures/transformer/char_transformer.onnx \\
        tests/fixtures/transformer/char_transformer_data.safetensors \\
        [--bench build/bench/hspec_bench_graph] [--precision fp64|fp32] [--threads 2] [--reps 9]

The model class is chosen by the file name (vit*, char_transformer*). hspec_bench_graph
writes its weights (as loaded, from the ONNX initializers), directions, products and
gradient with --dump; PyTorch loads those weights by name (and the float32 constants the
export rounded: see use_exported_constants), recomputes the products (they must agree to
1e-9 relative in fp64) and times them. Prints one JSON object: both sides'
median ms per product (k=1 and a block of 8; wall and process CPU time) and the ratios
hspec / PyTorch (below 1: hspec faster), per product, against PyTorch's full product and
against its second backward alone.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from graph_vs_torch import double_backward  # noqa: E402
import make_transformer_fixtures as fixtures  # noqa: E402


def model_for(path):
    base = os.path.basename(path)
    if base.startswith("vit"):
        return fixtures.ViT()
    if base.startswith("char_transformer"):
        return fixtures.CharTransformer()
    sys.exit(f"transformer_vs_torch.py: no model class for {base} (vit*, char_transformer*)")


def use_exported_constants(model):
    """The ONNX export stores the attention scale sqrt(d_head) as a float32 constant and
    LayerNorm's epsilon as a float32 attribute; PyTorch's model code uses them in double.
    In fp64 that alone moves the products by ~1e-8 relative (3e-9 and 8e-9 seen), so the
    PyTorch side takes the float32-rounded values that the graph hspec runs holds."""
    f32 = lambda v: float(np.float32(v))
    fixtures.math = types.SimpleNamespace(sqrt=lambda v: f32(math.sqrt(v)))
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = f32(m.eps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench",
                                                    "hspec_bench_graph"))
    ap.add_argument("--precision", default="fp64", choices=["fp32", "fp64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=9)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dt = torch.float64 if a.precision == "fp64" else torch.float32

    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "dump.safetensors")
        out = subprocess.run([a.bench, "--model", a.model, "--data", a.data, "--precision",
                              a.precision, "--threads", str(a.threads), "--reps", str(a.reps),
                              "--dump", dump], check=True, capture_output=True, text=True).stdout
        rows = {r["block"]: r for r in map(json.loads, out.splitlines())}
        t = load_file(dump)
        with safe_open(dump, "pt") as f:
            order = f.metadata()["parameters"].split(",")

    model = model_for(a.model).to(dt).eval()
    use_exported_constants(model)
    named = dict(model.named_parameters())
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(t[n].to(dt).reshape(p.shape))
    params = [named[n] for n in order]
    assert len(params) == len(named), "hspec's parameters are not the model's"
    data = load_file(a.data)
    x = data["inputs"]
    x = x.to(dt) if x.is_floating_point() else x.long()
    y = data["labels"].long()

    def loss_fn():
        z = model(x)
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))

    res = {"model": os.path.basename(a.model), "precision": a.precision,
           "threads": torch.get_num_threads(), "params": sum(p.numel() for p in params),
           "samples": int(x.shape[0]), "loss_hspec": rows[1]["loss"]}
    res.update(double_backward(loss_fn, params, t["directions"].to(dt), a.reps, t["products"],
                               t["gradient"]))
    tol = 1e-9 if a.precision == "fp64" else 1e-4
    res["products_agree"] = res["rel_diff_products"] <= tol
    for k in (1, 8):
        h = rows[k]
        res[f"hspec_block{k}_wall_cpu_ms_per_product"] = (h["wall_ms_per_product"],
                                                          h["cpu_ms_per_product"])
        full = res[f"full_block{k}_wall_cpu_ms_per_product"]
        second = res[f"second_backward_block{k}_wall_cpu_ms_per_product"]
        res[f"ratio_block{k}_vs_full_wall"] = round(h["wall_ms_per_product"] / full[0], 3)
        res[f"ratio_block{k}_vs_second_backward_wall"] = round(
            h["wall_ms_per_product"] / second[0], 3)
    print(json.dumps(res))
    if not res["products_agree"]:
        sys.exit(f"products differ: {res['rel_diff_products']:.3g} > {tol:g}")


if __name__ == "__main__":
    main()
