#!/usr/bin/env bash
# Install the carried NeMo 2.3.1 stack on the LENT GPU machine, offline.
#
#   source bench/gpu/install_offline.sh      # from the repo root, on the lent machine
#
# Installs .carry/wheels (made by bench/gpu/fetch_wheels.sh) into $SITE
# (default /tmp/site) without touching the machine's own packages, builds the
# megatron-core 0.12.1 sdist there, applies the lent-machine compatibility
# fixes (bench/gpu/lent_machine_compat/, see its README) and exports
# PYTHONPATH so that $SITE wins over the machine's newer transformers /
# lightning / huggingface-hub. Never used by the container: the NeMo image
# ships this stack as NVIDIA built it.
set -eo pipefail
REPO=${REPO:-$PWD}
SITE=${SITE:-/tmp/site}
WHEELS=$REPO/.carry/wheels
[ -d "$WHEELS" ] || { echo "install_offline: $WHEELS is missing (run bench/gpu/fetch_wheels.sh and carry .carry)" >&2; return 1 2>/dev/null || exit 1; }
t0=$(date +%s)
rm -rf "$SITE" && mkdir -p "$SITE"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl
# megatron-core compiles its dataset helper (C++/pybind11) against this python
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" \
  "$WHEELS"/megatron_core-*.tar.gz
# LENT_COMPAT_ENABLE: ids of opt-in fixes to apply too (see lent_machine_compat/apply.py)
python3 "$REPO/bench/gpu/lent_machine_compat/apply.py" --site "$SITE" \
  $(for id in ${LENT_COMPAT_ENABLE:-}; do printf -- '--enable %s ' "$id"; done)
export PYTHONPATH=$SITE:$REPO/bench/gpu/lent_machine_compat/stubs:$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
echo "install_offline: $(ls "$WHEELS" | wc -l) packages into $SITE in $(( $(date +%s) - t0 )) s"
