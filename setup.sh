#!/usr/bin/env bash
# Set up nsynth-live on a fresh Debian/Ubuntu machine: system packages (where missing), a virtualenv
# in .venv, and the package with its extras. Safe to run again; it only installs what is missing.
#   ./setup.sh            what playing needs (ONNX Runtime on the CPU; no torch)
#   ./setup.sh train      + torch, for training, ONNX export and the NSynth WaveNet
#   ./setup.sh dev        + torch and the test tools (pytest, music21, JACK-Client, sfizz, Ray, TensorFlow for
#                           the checkpoint converter test)
set -euo pipefail
cd "$(dirname "$0")"
MODE="${1:-run}"

DEB_PACKAGES=(fluidsynth libfluidsynth3 fluid-soundfont-gm libportaudio2 libsndfile1)
if [ "$MODE" = dev ]; then
  DEB_PACKAGES+=(jackd2 liblo-tools)
fi
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PIP_LOG=".venv-setup.log"
pip_install() {  # quiet unless it fails; then the log says why
  .venv/bin/pip install "$@" >"$PIP_LOG" 2>&1 || { cat "$PIP_LOG"; echo "setup: pip install $* failed (log: $PIP_LOG)"; exit 1; }
}

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
  pip_install -q --upgrade pip
fi
EXTRAS=""
[ "$MODE" = train ] && EXTRAS="train"
[ "$MODE" = dev ] && EXTRAS="train,dev,tf"
if [ -n "$EXTRAS" ]; then
  # torch==2.13.0 is the CPU wheel on these machines; a looser spec can pull GBs of CUDA packages.
  .venv/bin/python -c "import torch" 2>/dev/null || pip_install -q torch==2.13.0
  pip_install -q -e ".[${EXTRAS}]"
else
  pip_install -q -e .
fi
echo "setup: ready (.venv, extras: ${EXTRAS:-none})"
