#!/usr/bin/env bash
# One device call (~7 min on an H200): GPU extraction at MSD scale (bench_extract_gpu.py: bare
# forward vs the whole extract job on 1000 MP3s), then GPU training at paper scale (cached vs
# online features, bench_train_gpu.py). Run from the repo root on the GPU machine:
#
#     bash benchmarks/gpu_session.sh            # writes into $OUT (a temporary folder if unset)
#     bash benchmarks/gpu_session.sh --dry-run  # here, on the CPU: checks the carry and runs
#                                               # both benchmarks at tiny shapes (~1 min)
#
# The machine has no network, so what its image lacks travels with the working tree in two
# git-ignored folders that `bash benchmarks/gpu_carry.sh` builds (its header lists them; 32 MiB,
# under the 64 MiB a call carries): .whl/ (cp312 wheels) and .devcarry/tokenizer/ (SmolLM2's
# tokenizer files). The device call: run(command="bash
# benchmarks/gpu_session.sh", carry=[".whl", ".devcarry"], timeout_s=540).
# Writes to $OUT: env.txt (GPU, versions, import check), bench_extract_gpu.{log,json},
# bench_train_gpu.{log,json} (when each finishes), gpu_monitor.csv (nvidia-smi every 5 s).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
mark() { echo "=== $* [$(date +%T), ${SECONDS}s]"; }
DRY=""
[ "${1:-}" = "--dry-run" ] && DRY="--dry-run"
PY=python3
home=/tmp/mlhome

if [ -n "$DRY" ]; then
    # This CPU machine runs Python 3.11 and has everything installed: check that the carried
    # wheels would install on the GPU machine's Python 3.12, then use this checkout's venv.
    PY=${PYTHON:-.venv/bin/python}
    home=$(mktemp -d)
    mark "dry run: would the carried wheels install on cp312 manylinux x86-64?"
    ls .whl/*.whl >/dev/null 2>&1 || { mark "no .whl/*.whl: run benchmarks/gpu_carry.sh"; exit 2; }
    "$PY" -m pip --disable-pip-version-check -q install --dry-run --no-index --no-deps \
        --ignore-installed --target "$(mktemp -d)" --python-version 3.12 --implementation cp \
        --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 \
        --only-binary=:all: .whl/*.whl || { mark "the carried wheels do not fit cp312"; exit 2; }
    mark "wheels ok: $(ls .whl/*.whl | wc -l) files, $(du -sh .whl .devcarry | awk '{print $1}' | tr '\n' ' ')"
    export PYTHONPATH=$PWD DS_ACCELERATOR=cpu
else
    mark "install wheels into /tmp/site"
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl
        rc=$?; mark "install rc=$rc"
    else
        mark "install SKIPPED: no .whl/*.whl (run benchmarks/gpu_carry.sh, carry .whl)"
    fi
    export PYTHONPATH=/tmp/site:$PWD DS_ACCELERATOR=cuda
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MUSILINGO_HOME=$home
export HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false

mkdir -p "$home"
TOKENIZER=$PWD/.devcarry/tokenizer
[ -f "$TOKENIZER/tokenizer.json" ] || mark "MISSING $TOKENIZER (run benchmarks/gpu_carry.sh, carry .devcarry)"
export TOKENIZER

{
    mark "GPU"
    [ -n "$DRY" ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    mark "versions and imports"
    "$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "deepspeed", "zarr", "numcodecs", "huggingface_hub",
             "tokenizers", "safetensors", "accelerate", "pydantic", "soundfile", "soxr", "h5py",
             "typing_extensions", "regex", "musilingo"):
    try:
        m = importlib.import_module(name)
        print(f"{name:18} {getattr(m, '__version__', '?'):14} {getattr(m, '__file__', '?')}")
    except Exception as exc:  # keep going: show every failure
        print(f"{name:18} IMPORT FAILED: {type(exc).__name__}: {exc}")
try:
    import torch
    print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name() if torch.cuda.is_available() else "")
    from deepspeed.accelerator import get_accelerator
    print("deepspeed accelerator", get_accelerator()._name)
    import os

    from musilingo.models.llm import load_tokenizer
    print("tokenizer", len(load_tokenizer(os.environ["TOKENIZER"])))
except Exception as exc:
    print("CHECK FAILED:", type(exc).__name__, exc)
EOF
} 2>&1 | tee "$OUT/env.txt"

monitor=""
if [ -z "$DRY" ]; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 \
        >"$OUT/gpu_monitor.csv" 2>&1 &
    monitor=$!
fi

# Extraction at MSD scale first (issue 12 item 1): 1000 MSD-like 30 s MP3s, MERT-330M layout,
# bf16, bare forward vs the whole extract job; budget ~3 min (clip generation ~30 s on 16 cores).
mark "bench_extract_gpu"
timeout 200 "$PY" benchmarks/bench_extract_gpu.py $DRY --clips 1000 --batch-size 16 --workers 14 \
    --work /tmp/bench_extract_gpu --json "$OUT/bench_extract_gpu.json" 2>&1 \
    | tee "$OUT/bench_extract_gpu.log"
rc_extract=${PIPESTATUS[0]}
mark "bench_extract_gpu rc=$rc_extract$([ "$rc_extract" = 124 ] && echo ' (timed out)')"
rm -rf /tmp/bench_extract_gpu

# Defaults are the paper's shapes (MERT-330M layout, 7B LLaMA shape, 8 x 30 s clips per step,
# bf16, ZeRO-0); 10 steps per mode (first 2 untimed). Docstring budget on an H100: ~3 min.
mark "bench_train_gpu"
timeout 240 "$PY" benchmarks/bench_train_gpu.py $DRY --steps 10 --micro 8 \
    --tokenizer "$TOKENIZER" --json "$OUT/bench_train_gpu.json" 2>&1 | tee "$OUT/bench_train_gpu.log"
rc=${PIPESTATUS[0]}
mark "bench_train_gpu rc=$rc$([ "$rc" = 124 ] && echo ' (timed out)')"
[ "$rc" = 0 ] && rc=$rc_extract
[ -n "$monitor" ] && kill "$monitor" 2>/dev/null
if [ -f "$OUT/bench_train_gpu.json" ]; then
    "$PY" -c "import json, sys; r = json.load(open(sys.argv[1])); [r[m].pop('step_seconds', None) for m in ('cached', 'online')]; print(json.dumps(r, indent=1))" "$OUT/bench_train_gpu.json"
else
    mark "no bench_train_gpu.json"
fi
mark "done"
exit "$rc"
