#!/usr/bin/env bash
# Create .venv and install azchat into it. `--test` adds the test tools and Ray (azchat[ray], for the
# `index --ray` tests).
# torch comes as a CPU build: a wheel already on this machine's disk when there is one,
# else PyTorch's CPU index (a plain `pip install torch` would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "Installing torch (CPU build) ..."
    $PIP install -q --no-deps --no-index "torch==${AZCHAT_TORCH_VERSION:-2.13.0}" 2>/dev/null \
        || $PIP install -q torch --index-url "${AZCHAT_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
               --extra-index-url https://pypi.org/simple
fi
extra=""
[ "${1:-}" = "--test" ] && extra="[test,ray]"
echo "Installing azchat${extra} ..."
$PIP install -q -e ".${extra}"
if [ -n "$extra" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    # The browser test drives Debian's Chromium (Playwright's own browser download is not used).
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing chromium (for the browser test) ..."
        apt-get install -y -q chromium >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    else
        echo "Note: install Chromium (e.g. apt-get install chromium) to run the browser test." >&2
    fi
fi
echo "Ready: .venv/bin/azchat"
