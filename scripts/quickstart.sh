#!/usr/bin/env bash
# Quick start: install dependencies, build, write a small RANDOM-WEIGHT demo
# checkpoint, and generate from it. The weights are random, so the generated
# text is meaningless: this shows the engine working end to end. For the real
# model see README.md ("Running the real model").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --target huginn_cli
if [ ! -f models/demo/model.safetensors ]; then
  ./build/huginn make-random --preset demo -o models/demo
fi
./build/huginn info -m models/demo
./build/huginn generate -m models/demo --prompt "The raven said" -n 24 --steps 8 --seed 1
echo
