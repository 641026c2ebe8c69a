#!/usr/bin/env bash
# The README's demo: installs, builds, trains the same MLP on Fashion-MNIST with a small and
# a large batch (same epochs, same learning rate, as in Keskar et al. 2017), analyzes both
# minima and says which is sharper. `scripts/demo.sh --quick` runs the small synthetic
# example instead (no data set needed, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
# Only what the demo runs: the test suite is scripts/test.sh's business.
cmake --build build -j"$(nproc)" --target hspec hspec_make_example
mkdir -p build/demo

if [ "${1:-}" = "--quick" ]; then
  ./build/hspec_make_example build/demo
  ./build/hspec analyze --model build/demo/model.safetensors \
    --data build/demo/data.safetensors --top 5 --bottom 5 --precision fp64 \
    --json build/demo/report.json
  echo "JSON report: build/demo/report.json"
  exit 0
fi

FM=/usr/share/datasets/fashion-mnist
if [ ! -r "$FM/train-images-idx3-ubyte.gz" ]; then
  echo "demo: $FM not found (Debian package dataset-fashion-mnist);" \
    "'bash scripts/demo.sh --quick' needs no data" >&2
  exit 3
fi
TRAIN=(--data "$FM/train-images-idx3-ubyte.gz" --labels "$FM/train-labels-idx1-ubyte.gz")
TEST=(--eval-data "$FM/t10k-images-idx3-ubyte.gz" --eval-labels "$FM/t10k-labels-idx1-ubyte.gz")
# Keskar et al. train both with the same optimizer settings; the small batch is 256 of
# 60,000 (0.4%), the large one 10% of the data. Scaled down: 8,192 images, 32 vs 1,024.
SAMPLES=8192 EPOCHS=100 LR=0.1 SB=32 LB=1024
NET=(--layers 784-64-10 --activation tanh --loss ce --lr "$LR" --epochs "$EPOCHS" --seed 1)

declare -A LOSS ACC TESTACC LMAX LMIN
for b in "$SB" "$LB"; do
  ck=build/demo/batch$b.safetensors
  echo "== train, batch $b ($SAMPLES images, $EPOCHS epochs, lr $LR)"
  # Per-epoch progress goes to a log; show every 20th epoch.
  ./build/hspec train "${TRAIN[@]}" "${TEST[@]}" --samples "$SAMPLES" "${NET[@]}" \
    --batch "$b" --out "$ck" 2>build/demo/batch$b.log | tee build/demo/batch$b.train.txt
  awk 'NR % 20 == 0' build/demo/batch$b.log
  echo "== analyze, batch $b"
  ./build/hspec analyze --model "$ck" "${TRAIN[@]}" --samples "$SAMPLES" --top 3 --bottom 1 \
    --json build/demo/batch$b.json | tee build/demo/batch$b.analyze.txt
  LOSS[$b]=$(awk '$1 == "loss" { print $2; exit }' build/demo/batch$b.analyze.txt)
  LMAX[$b]=$(awk '$1 == "top" { print $2; exit }' build/demo/batch$b.analyze.txt)
  LMIN[$b]=$(awk '$1 == "bottom" { print $2; exit }' build/demo/batch$b.analyze.txt)
  ACC[$b]=$(awk '$1 == "train" { print $NF; exit }' build/demo/batch$b.train.txt)
  TESTACC[$b]=$(awk '$1 == "held-out" { print $NF; exit }' build/demo/batch$b.train.txt)
done

echo
printf '%-12s %12s %12s %12s %12s %12s\n' batch lambda_max lambda_min "train loss" \
  "train acc" "test acc"
for b in "$SB" "$LB"; do
  printf '%-12s %12.4f %12.4f %12s %12s %12s\n' "$b" "${LMAX[$b]}" "${LMIN[$b]}" "${LOSS[$b]}" \
    "${ACC[$b]}" "${TESTACC[$b]}"
done
awk -v s="${LMAX[$SB]}" -v l="${LMAX[$LB]}" -v sb="$SB" -v lb="$LB" 'BEGIN {
  if (l > s) printf "the large-batch (%d) minimum is sharper: lambda_max %.3f vs %.3f (%.2fx)\n", lb, l, s, l / s;
  else printf "the small-batch (%d) minimum is sharper: lambda_max %.3f vs %.3f (%.2fx)\n", sb, s, l, s / l;
}'
echo "reports: build/demo/batch$SB.json build/demo/batch$LB.json"
