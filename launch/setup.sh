#!/usr/bin/env bash
# Installs what attn-train needs on a fresh Debian 12 machine that has only Swift: Open MPI, OpenBLAS
# and pkg-config from apt, and (for the tests and reference scripts) numpy, safetensors, tiktoken,
# Hugging Face tokenizers, tensorboard (whose own reader checks our event files) and Pillow from
# PyPI, and Chromium (the report test renders report.html in it, headless) and iproute2 (the
# multi-host tests make network namespaces) from apt.
# Safe to run again: it installs only what is missing. Needs root (or sudo) for apt.
set -euo pipefail

packages=(libopenmpi-dev openmpi-bin libopenblas-dev pkg-config)
if [ "${1:-}" = "--python" ]; then packages+=(chromium iproute2); fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--python" ]; then
  if ! python3 -c "import numpy, safetensors, tiktoken, tokenizers, tensorboard, PIL" 2>/dev/null; then
    echo "setup: installing numpy, safetensors, tiktoken, tokenizers, tensorboard and Pillow from PyPI"
    python3 -m pip install -q numpy safetensors tiktoken tokenizers tensorboard pillow
  fi
fi
