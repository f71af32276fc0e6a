#!/usr/bin/env bash
# Prepares what the one-shot GPU training call carries (docs/training.md, "The GPU run"):
#   .whl/             wheels the GPU machine lacks (keras and its needs, constriction), for its
#                     CPython 3.12 on x86-64, at the versions installed here;
#   .data/train-gpu/  a copy of ../shared/data/train-gpu (37 MiB), the training images.
# Then checks that everything that travels (tracked files, untracked files git does not ignore,
# .whl, .data) stays under the device's 64 MiB, with a 4 MiB margin.
#
#   scripts/prepare-gpu-run.sh                    # wheels, data and the size check
#   scripts/prepare-gpu-run.sh --rehearse PY312   # also: a Python 3.12 venv with the GPU
#                                                 # machine's jax, the carried wheels installed
#                                                 # exactly as the device call does, and a
#                                                 # --dry-run of the call on this CPU
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_SRC="${L3IC_TRAIN_DATA:-../shared/data/train-gpu}"
LIMIT_MIB=60
DEVICE_JAX=0.11.2  # the GPU machine's jax (the device tool's KINDS.md, 2026-11)

version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }

rm -rf .whl && mkdir -p .whl
for pkg in keras namex optree constriction; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d .whl "$pkg==$(version "$pkg")"
done
ls -l .whl

rm -rf .data/train-gpu && mkdir -p .data
cp -r "$DATA_SRC" .data/train-gpu
echo "training images: $(ls .data/train-gpu | grep -ciE '\.(jpe?g|png)$') in .data/train-gpu"

bytes() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
untracked=$(git ls-files -o --exclude-standard -z | xargs -0 -r du -cb | awk '$2 == "total" {s += $1} END {print s + 0}')
carried=$(bytes .whl .data)
total=$((tracked + untracked + carried))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "travels: tracked $(mib "$tracked"), untracked $(mib "$untracked"), .whl + .data $(mib "$carried"): $(mib "$total")"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "error: over $LIMIT_MIB MiB; the device takes 64 MiB" >&2
    exit 1
fi

if [ "${1:-}" = "--rehearse" ]; then
    py="${2:?--rehearse needs a Python 3.12 interpreter}"
    venv=/tmp/l3ic-gpu-rehearsal
    rm -rf "$venv" /tmp/l3ic-site
    "$py" -m venv "$venv"
    # what the GPU machine already has (KINDS.md lists it), with its jax
    "$venv/bin/pip" install -q "jax==$DEVICE_JAX" numpy pillow imageio scikit-image tqdm h5py \
        rich absl-py ml-dtypes packaging typing-extensions
    # the device call's own first lines
    "$venv/bin/python3" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/l3ic-site .whl/*.whl
    out=$(mktemp -d)
    PYTHONPATH=/tmp/l3ic-site:src KERAS_BACKEND=jax PYTHONUNBUFFERED=1 "$venv/bin/python3" -m l3ic.training.loop \
        gpu-run --dry-run --data .data/train-gpu --out "$out"
    PYTHONPATH=/tmp/l3ic-site:src KERAS_BACKEND=jax "$venv/bin/python3" -m bench.gpu_decode \
        --dry-run --json "$out/decode.json"
    ls -l "$out"
fi
