#!/usr/bin/env bash
# Prints the libtorch backend to build, `cpu` or `cuda`, from HIGGS_TORCH_BACKEND:
#   cpu | cuda  as given;
#   auto        (the default) cuda when `nvidia-smi -L` lists at least one GPU, else cpu.
# Anything else: one line on stderr and exit code 2. ./higgs, bench/run and the docs build with
# -p:TorchBackend=<this>, so one switch decides, instead of a CPU build failing later on a GPU machine.
set -uo pipefail
value="${HIGGS_TORCH_BACKEND:-auto}"
case "${value,,}" in
  cpu) echo cpu ;;
  cuda) echo cuda ;;
  auto)
    # a wedged driver can make nvidia-smi hang; no answer in time counts as no GPU
    if timeout 20 nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]'; then echo cuda; else echo cpu; fi ;;
  *)
    echo "HIGGS_TORCH_BACKEND='$value' is not one of cpu, cuda, auto" >&2
    exit 2 ;;
esac
