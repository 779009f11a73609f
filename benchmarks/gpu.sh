#!/usr/bin/env bash
# Samples/s of CREMA-D-shaped audio-video ResNet-18 training through the plugin's trainer
# (MultimodalTrainer.train_batch), MLA against concat, in fp32 and mixed precision (bf16,
# fp16 + GradScaler), on one GPU and, when there are more, DDP over all of them
# (torchrun); writes the table into docs/benchmarks.md with the card named.  See
# benchmarks/bench_gpu.py for the options.
#
#   bash benchmarks/gpu.sh                 # on a GPU machine (about 2-4 minutes per GPU count)
#   bash benchmarks/gpu.sh --smoke         # on the CPU, tiny shapes, 2 steps
#   bash benchmarks/gpu.sh --batch 32      # smaller batch; --precisions fp32 bf16; --out FILE
#   bash benchmarks/gpu.sh --channels-last # training.channels_last=True; --ddp N: N ranks
#
# On a machine whose files do not come back (a lent device machine: only $OUT returns),
# update a copy and bring it back:
#   cp docs/benchmarks.md "$OUT"/ && bash benchmarks/gpu.sh --out "$OUT"/benchmarks.md --json "$OUT"/gpu.json
#
# Python: $PYTHON if set, else the project's .venv, else python3 (on a machine without
# MMF the models are assembled from mla_plugin.core, which needs only PyTorch).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
export PYTHONUNBUFFERED=1
exec "$py" benchmarks/bench_gpu.py "$@"
