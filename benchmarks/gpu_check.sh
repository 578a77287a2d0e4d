#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: everything the GPU path promises, checked and measured.
#
#   benchmarks/gpu_check.sh OUTDIR
#
# Run from the repository root. Needs CUDA, CuPy, numpy, h5py, Pillow, matplotlib, tqdm
# and pytest (PyTorch with CUDA for the side-by-side benchmark); no network: the package
# is used from the tree (PYTHONPATH=.), never pip-installed. Every result goes under
# OUTDIR; SUMMARY.txt lists each step's status and figures. Each step has its own time
# limit, so the whole check ends within about 6 minutes, and a failing step does not stop
# the next. Exit status: 0 if every step passed, 1 otherwise.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"  # the tree, absolute: step 5 runs in OUTDIR
export CUPY_TF32=0 MPLBACKEND=Agg
PY=${PYTHON:-python3}
SUMMARY="$OUT/SUMMARY.txt"
: > "$SUMMARY"
FAILED=0

# step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log, record status and wall time
step() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local status=ok
  if [ $rc -eq 124 ]; then status="TIMED OUT after ${limit}s"; elif [ $rc -ne 0 ]; then status="FAILED (exit $rc)"; fi
  [ "$status" = ok ] || FAILED=1
  printf '%-22s %-26s %4ds  %s\n' "$name" "$status" $((SECONDS - t0)) "$OUT/$name.log" | tee -a "$SUMMARY"
}

# Sizes: the real check, or GPU_CHECK_QUICK=1 for a dry run of every step at toy sizes.
if [ "${GPU_CHECK_QUICK:-0}" = 1 ]; then
  BENCH_SIZES="64"; BIG=64; BIG_ITERS=3; DEMO_ARGS="--size 32 --iterations 2"; RESUME_SIZE=64; RESUME_ITERS=6
else
  BENCH_SIZES="512 1024"; BIG=1024; BIG_ITERS=200; DEMO_ARGS=""; RESUME_SIZE=256; RESUME_ITERS=30
fi
export PY RESUME_SIZE RESUME_ITERS

# 1. the machine and the versions
versions() {
  nvidia-smi || echo "nvidia-smi: not found"
  "$PY" - <<'EOF'
import sys, numpy, cupy
print('python', sys.version.split()[0], '| numpy', numpy.__version__, '| cupy', cupy.__version__,
      '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(), '| driver', cupy.cuda.runtime.driverGetVersion())
try:
    import torch
    print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| available', torch.cuda.is_available())
except ImportError:
    print('torch: not installed')
EOF
}
export -f versions
step 1-versions 15 bash -c versions

# 2. every GPU-marked test (the same tests that run on the strict stand-in everywhere)
step 2-gpu-tests 150 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests --ignore=tests/test_tutorials.py -rfE

# 3. one iteration at 512 and 1024 px, CuPy against PyTorch CUDA, side by side (TF32 off on both)
step 3-bench-gpu 60 "$PY" benchmarks/bench_gpu.py --sizes $BENCH_SIZES

# 4. the user path at print size: 1024 px, 200 L-BFGS iterations, timed (bash's time: "real"); the image is kept
step 4-stylize-big 60 bash -c "time $PY -m scratchnst stylize astronaut starry_night \
  -o '$OUT/stylize-$BIG.png' --size $BIG --iterations $BIG_ITERS --device gpu --quiet --checkpoint-every 0"

# 5. the demo on the GPU, end to end, timed
step 5-demo 30 bash -c "cd '$OUT' && time $PY -m scratchnst demo -o demo-gpu.png --device gpu --quiet $DEMO_ARGS"

# 6. Ctrl-C and resume on the GPU give the uninterrupted image bit for bit; the memory pool's
#    peak against the GPU memory estimate
step 6-resume 45 "$PY" - <<'EOF'
import os
import tempfile

import numpy as np
import cupy
from scratchnst.files.checkpoint import load_checkpoint
from scratchnst.transfer import estimate
from scratchnst.transfer.loop import stylize
from scratchnst.transfer.settings import Settings

def settings():
    return Settings(content="astronaut", styles=["starry_night"], size=int(os.environ["RESUME_SIZE"]),
                    iterations=int(os.environ["RESUME_ITERS"]), scales=2, device="gpu")

pool = cupy.get_default_memory_pool()
pool.free_all_blocks()
full = stylize(settings())
peak = pool.total_bytes()  # the pool never returns memory unless asked: what it holds is its peak
ckpt = os.path.join(tempfile.mkdtemp(), "run.ckpt.npz")
def stop(level, n_levels, it, terms):
    if level == 1 and it == int(os.environ["RESUME_ITERS"]) // 3:
        raise KeyboardInterrupt
stopped = stylize(settings(), on_iteration=stop, checkpoint_path=ckpt)
assert stopped.interrupted
resumed = stylize(None, resume=load_checkpoint(ckpt))
same = np.array_equal(resumed.rgb, full.rgb) and resumed.history["total"] == full.history["total"]
H, W = full.rgb.shape[:2]
need = estimate.memory_bytes(H, W, optimizer_images=2 * 10 + 6, device="gpu")
print(f"resume bit for bit: {'yes' if same else 'NO'}")
print(f"memory at {W}x{H}: pool peak {peak / 2**20:.0f} MiB, estimate {need / 2**20:.0f} MiB ({need / peak:.2f}x)")
raise SystemExit(0 if same else 1)
EOF

# 7. the summary: figures pulled from the logs
{
  echo
  echo "figures:"
  grep -hE "px|x PyTorch|ratio" "$OUT/3-bench-gpu.log" 2>/dev/null | sed 's/^/  bench: /'
  grep -hE "^real" "$OUT/4-stylize-big.log" 2>/dev/null | sed "s/^/  stylize $BIG px, $BIG_ITERS iterations: /"
  grep -hE "^real" "$OUT/5-demo.log" 2>/dev/null | sed 's/^/  demo: /'
  grep -hE "bit for bit|pool peak" "$OUT/6-resume.log" 2>/dev/null | sed 's/^/  /'
  tail -n 1 "$OUT/2-gpu-tests.log" 2>/dev/null | sed 's/^/  tests: /'
} | tee -a "$SUMMARY"
exit $FAILED
