#!/usr/bin/env bash
# The GPU numbers: `s4mi bench` on CUDA (engine at its auto precision, then at fp32, against the plain fp32 step
# and the simple autocast step, each in fresh processes), then the CUDA check of AMP, memory release and resume.
# Needs a CUDA machine with torch, timm and the package's other dependencies; writes into ${OUT:-gpu-out}.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$out/device.txt" || true
python3 -c 'import sys; from napari_s4mi.cli import main; sys.exit(main(sys.argv[1:]))' bench --device cuda --parts train iou slide --out "$out/auto" 2>&1 | tail -n 25
python3 benchmarks/cuda_check.py --iterations 20 >"$out/cuda_check.md" 2>"$out/cuda_check.err"; tail -n 60 "$out/cuda_check.md"
python3 -c 'import sys; from napari_s4mi.cli import main; sys.exit(main(sys.argv[1:]))' bench --device cuda --precision fp32 --parts train slide --out "$out/fp32" 2>&1 | tail -n 12
