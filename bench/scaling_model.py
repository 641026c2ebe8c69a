#!/usr/bin/env python3
"""The data-parallel scaling model of bench/RESULTS.md: time per Hessian-vector product of a
ResNet-50-sized model on R H200s, from the product's flops and a ring allreduce of its P
numbers. Every input is an assumption stated below (nothing here is measured); plain python3."""
import argparse

P = 25.6e6                # parameters (ResNet-50)
FWD = 4.1e9               # FLOP per 224x224 image forward, as usually quoted
HVP_PASSES = 5.0          # a product costs about 4-5 forward passes: take 5
BYTES = 4                 # fp32 products and reductions
F_FP32 = 0.5 * 67e12      # H200 fp32 (non-tensor) peak 67 TFLOP/s at 50%
F_TF32 = 0.4 * 495e12     # H200 TF32 tensor-core dense peak 495 TFLOP/s at 40% (--precision tf32)
PCIE = 50e9               # B/s each way, host staging (PCIe Gen5 x16, effective)
SHM = 20e9                # B/s, MPI allreduce through host shared memory within a node
HOST_MEM = 20e9           # B/s one core streams over the staging block (scale: read+write; hash: read)
NVLINK = 400e9            # B/s per direction per GPU (NVLink 4), for a GPU-direct reduction
NIC = 200e9 / 8           # B/s: one 200 Gb/s link per GPU between nodes
LAT_INTRA, LAT_INTER = 2e-6, 5e-6  # per ring step
GPUS_PER_NODE = 8


def ring(r, bw, lat):
    """Ring allreduce of P numbers over r ranks: 2(r-1)/r * bytes / bandwidth + latency."""
    if r == 1:
        return 0.0
    return 2 * (r - 1) / r * P * BYTES / bw + 2 * (r - 1) * lat


def comm(r, path):
    if r == 1:
        return 0.0
    if path == "staged":  # what hspec does: device -> pinned host -> MPI -> device
        # a ring step takes as long as its slowest hop: beyond one node, some hops stay in a node
        link = SHM if r <= GPUS_PER_NODE else min(SHM, NIC)
        lat = LAT_INTRA if r <= GPUS_PER_NODE else LAT_INTER
        return 2 * P * BYTES / PCIE + 3 * P * BYTES / HOST_MEM + ring(r, link, lat)
    # GPU-direct (CUDA-aware MPI / NCCL, not implemented): NVLink in a node, NICs beyond
    return ring(r, NVLINK, LAT_INTRA) if r <= GPUS_PER_NODE else ring(r, NIC, LAT_INTER)


def main():
    global SHM
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=float, default=10000)
    ap.add_argument("--shm", type=float, default=SHM / 1e9, help="GB/s of the in-node MPI path")
    args = ap.parse_args()
    SHM = args.shm * 1e9
    n = args.samples
    print(f"N = {n:.0f} images, P = {P/1e6:.1f} M, one direction per product, in-node MPI {SHM/1e9:g} GB/s")
    print("| GPUs | compute fp32 | reduce (staged) | product fp32 | efficiency |"
          " product tf32 | efficiency | product tf32, GPU-direct | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in (1, 2, 4, 8, 16, 32, 64):
        c32 = n * FWD * HVP_PASSES / F_FP32
        c16 = n * FWD * HVP_PASSES / F_TF32
        s, d = comm(r, "staged"), comm(r, "direct")
        t32, t16, t16d = c32 / r + s, c16 / r + s, c16 / r + d
        print(f"| {r} | {1e3*c32/r:.0f} ms | {1e3*s:.1f} ms | {1e3*t32:.0f} ms |"
              f" {c32/(r*t32):.0%} | {1e3*t16:.1f} ms | {c16/(r*t16):.0%} |"
              f" {1e3*t16d:.1f} ms | {c16/(r*t16d):.0%} |")
    for name, f in (("fp32", F_FP32), ("tf32", F_TF32)):
        c = n * FWD * HVP_PASSES / f
        for path in ("staged", "direct"):
            # 50% efficiency where the reduction equals the shard's compute
            r = next((r for r in range(1, 100000) if comm(r, path) >= c / r), None)
            print(f"{name}, {path}: reduction time reaches compute time at R = {r}")


if __name__ == "__main__":
    main()
