#!/usr/bin/env bash
# The main job on real data, offline: Fashion-MNIST (Debian's dataset-fashion-mnist) in the
# reference layout -> train the two-head and the three-output model -> evaluate both ->
# print the comparison table. About 10 minutes on 2 CPU cores (measured: docs/results.md).
# Settings can be changed from the environment, e.g. DEMO_EPOCHS=3 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DEMO_DATA:-demo_data/fashion-mnist}
OUT=${DEMO_OUT:-saved_models/demo}
SIZE=${DEMO_SIZE:-64}
EPOCHS=${DEMO_EPOCHS:-9}
FASHION=/usr/share/datasets/fashion-mnist

if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ] && [ ! -f "$FASHION/train-images-idx3-ubyte" ]; then
  echo "Installing Debian's dataset-fashion-mnist (needs root and the Debian mirror)..."
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist
fi

if [ ! -f "$DATA/test.csv" ]; then
  tf-twohead data fashion-mnist "$DATA" --size "$SIZE" --train 24000 --val 3000 --test 5000 \
    --overwrite  # a half-written folder from an interrupted demo
fi

COMMON=("data.root=$DATA" "data.img_size=$SIZE" "output_dir=$OUT" "train.epochs=$EPOCHS")
tf-twohead train --config two_head exp=two_head "${COMMON[@]}" --overwrite
tf-twohead train --config three_class exp=three_class "${COMMON[@]}" --overwrite

for run in two_head three_class; do
  tf-twohead evaluate "$OUT/$run" --threads 1 --target-precision 0.95
done
tf-twohead convert "$OUT/two_head" --quantize dynamic

echo
echo "== Fashion-MNIST demo: main = shirt ('screen'), aux = shoes/trousers/bags ('not a document')"
tf-twohead compare "$OUT/two_head" "$OUT/three_class" --markdown --plot "$OUT/runs.png"
