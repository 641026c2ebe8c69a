#!/usr/bin/env bash
# Installs what hspec needs to build and test on a fresh Debian/Ubuntu machine.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs="build-essential cmake libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev zlib1g-dev"
# Any BLAS/LAPACK works (reference or OpenBLAS); prefer OpenBLAS where the archive has it.
pkgs="$pkgs libopenblas-dev liblapack-dev"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# ONNX import (HSPEC_ONNX=AUTO builds it when these are present): libonnx-dev's onnx.proto
# bindings and protobuf. Optional: without them hspec builds with no ONNX support.
for p in libonnx-dev libprotobuf-dev; do
  if ! dpkg -s "$p" >/dev/null 2>&1; then
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$p"; } ||
      echo "install-deps: $p not installed (hspec builds without ONNX import)" >&2
  fi
done
# MPI (HSPEC_MPI=AUTO builds data-parallel runs when found): Open MPI's headers and
# mpiexec, which the distributed tests launch. Optional: without it hspec runs on one process.
for p in libopenmpi-dev openmpi-bin; do
  if ! dpkg -s "$p" >/dev/null 2>&1; then
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$p"; } ||
      echo "install-deps: $p not installed (hspec builds without MPI)" >&2
  fi
done
# Fashion-MNIST (IDX files under /usr/share/datasets/fashion-mnist/) for scripts/demo.sh and
# the Fashion-MNIST training test. Optional: an archive without it must not stop a build.
if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist; } ||
    echo "install-deps: dataset-fashion-mnist not installed (needed by scripts/demo.sh)" >&2
fi
