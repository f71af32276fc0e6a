#!/usr/bin/env bash
# Issue 29's measurements on a CPU with AMX (docs/runtimes.md, "Still to do on an AMX CPU"), in
# one go, from a checkout with `pip install ".[test]"` done and other jobs paused:
#   - bench.speed: l3ic 32c on ONNX Runtime, OpenVINO f32 and bf16 and auto (network, batches of
#     256x256, whole process) beside AVIF, JPEG 2000 and JPEG, 768x512 and 1920x1080, 1 and 2
#     threads -> bench/results/speed-amx/
#   - bench.runtime_agreement --pair bf16: each preset's bf16 quality against float32 on the
#     Kodak crops and Kodak -> bench/results/runtime_agreement-amx.json
# The issue's targets are ratios within the speed run: network at most 0.15x ONNX Runtime's,
# whole process at most 0.6x, batched decode at least 5x.
#
#   scripts/amx-checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! grep -q amx_bf16 /proc/cpuinfo; then
    echo "amx-checks: no amx_bf16 in /proc/cpuinfo: this CPU has no AMX" >&2
    exit 1
fi
PY="${PYTHON:-python}"
"$PY" -m bench.speed --codecs l3ic-32c avif420 jpeg2000 jpeg420 \
    --runtimes onnx openvino-f32 openvino-bf16 auto --out bench/results/speed-amx
"$PY" -m bench.runtime_agreement --pair bf16 --json bench/results/runtime_agreement-amx.json
echo "amx-checks: done; the tables go to docs/runtimes.md"
