# jpqwen: teach Qwen2.5-0.5B Japanese with NeMo 2.0.  `make help` lists the targets.
#
# The Makefile is the DAG of the workflow. Each stage target runs exactly one
# `python -m pipeline.<stage>`, either natively (RUNTIME=local, in .venv) or in
# the pinned NeMo image (RUNTIME=docker, through `docker compose run`: every
# Docker flag lives in compose.yaml, nowhere else). A finished stage leaves
# $(WORK_DIR)/stamps/<stage>.json; Make re-runs a stage only when its config,
# its arguments or an upstream stage changed, and the stage itself skips work
# whose fingerprint (config + inputs) is unchanged. FORCE=1 redoes it.

.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --no-builtin-rules --no-print-directory

# Non-secret knobs may also come from .env (command line and shell win).
DOTENV_KNOBS := RUNTIME WORK_DIR DATA_DIR HF_HOME IMAGE BASE_IMAGE BASE_DIGEST GPUS
dotenv_value = $(patsubst ~/%,$(HOME)/%,$(shell test -f .env && sed -n 's/^$(1)=//p' .env | tail -n 1))
$(foreach k,$(DOTENV_KNOBS),$(if $(filter undefined,$(origin $(k))),$(if $(call dotenv_value,$(k)),$(eval $(k) := $(call dotenv_value,$(k))))))

# ---- knobs (override: `make pretrain CONFIG=configs/tiny.yaml GPUS=2`) -------
CONFIG     ?= configs/default.yaml## preset YAML with one section per stage
WORK_DIR   ?= $(CURDIR)/work## where every artifact lands (absolute)
DATA_DIR   ?= $(CURDIR)/data/raw## downloaded corpora (LLM-jp files); never written by later stages
HF_HOME    ?= $(HOME)/.cache/huggingface## Hugging Face cache, shared with the container
IMAGE      ?= jpqwen:25.04## image the stages run in (built FROM the pinned BASE_IMAGE)
BASE_IMAGE ?= nvcr.io/nvidia/nemo:25.04## the pinned NeMo image
BASE_DIGEST ?=## optional sha256:... digest of BASE_IMAGE for bit-identical builds
GPUS       ?= all## GPUs the container reserves: all or a count
EXTRA_ARGS ?=## more stage arguments, e.g. --set pretrain.max_steps=20
FORCE      ?=## 1 = redo the stage even if up to date
DRY_RUN    ?=## 1 = print the stage command instead of running it
PYTHON     ?= $(shell command -v python3.11 || command -v python3)## interpreter for the local virtualenv
VENV       ?= .venv
PYTEST_ARGS ?=
MEGATRON_LM ?=## checkout of NVIDIA/Megatron-LM for bench-data's side-by-side run (tools/preprocess_data.py)

# RUNTIME: docker when a Docker engine answers, else local (said once per stage).
ifeq ($(origin RUNTIME),undefined)
  RUNTIME := $(shell docker info >/dev/null 2>&1 && echo docker || echo local)
  ifeq ($(RUNTIME),local)
    RUNTIME_NOTE := echo "jpqwen: no Docker engine answered; running natively (RUNTIME=local)" >&2
  endif
endif

override WORK_DIR := $(abspath $(WORK_DIR))
override DATA_DIR := $(abspath $(DATA_DIR))
STAMPS := $(WORK_DIR)/stamps
VPY := $(VENV)/bin/python
HOST_UID := $(shell id -u)
HOST_GID := $(shell id -g)

# The environment every stage sees (compose reads it for interpolation too).
STAGE_ENV = WORK_DIR=$(WORK_DIR) DATA_DIR=$(DATA_DIR) HF_HOME=$(HF_HOME)
COMPOSE_ENV = $(STAGE_ENV) JPQWEN_IMAGE=$(IMAGE) BASE_IMAGE=$(BASE_IMAGE)$(if $(BASE_DIGEST),@$(BASE_DIGEST)) \
  GPU_COUNT=$(GPUS) HOST_UID=$(HOST_UID) HOST_GID=$(HOST_GID)
COMPOSE = env $(COMPOSE_ENV) docker compose -f compose.yaml

ifeq ($(RUNTIME),docker)
  RUN_PY = $(COMPOSE) run --rm stage python
  RUNTIME_DEP =
else ifeq ($(RUNTIME),local)
  RUN_PY = env $(STAGE_ENV) $(VPY)
  RUNTIME_DEP = $(VENV)/.installed
else
  $(error RUNTIME must be docker or local, got '$(RUNTIME)')
endif

FORCE_FLAG = $(if $(filter-out 0,$(FORCE)),--force)
# stage_cmd(stage): the one command a stage target runs.
stage_cmd = $(strip $(RUN_PY) -m pipeline.$(1) --config $(CONFIG) $(FORCE_FLAG) $(EXTRA_ARGS))
define run_stage
	$(if $(RUNTIME_NOTE),@$(RUNTIME_NOTE))
	$(if $(DRY_RUN),@echo '$(call stage_cmd,$(1))',$(call stage_cmd,$(1)))
endef

# Stage arguments Make cannot see in file times: re-run stages when they change.
ARGS_FILE := $(STAMPS)/.make-args
ARGS_NOW := $(CONFIG) $(EXTRA_ARGS) $(FORCE_FLAG)
STAGE_GOALS := data import plan pretrain lora export eval handoff demo all
ifeq ($(filter $(STAGE_GOALS),$(MAKECMDGOALS)),)
else ifneq ($(DRY_RUN),)
else ifneq ($(shell cat $(ARGS_FILE) 2>/dev/null),$(strip $(ARGS_NOW)))
  $(shell mkdir -p $(STAMPS) && echo '$(strip $(ARGS_NOW))' > $(ARGS_FILE))
endif
FORCE_DEP = $(if $(FORCE_FLAG),.FORCE)
STAGE_DEPS = $(CONFIG) $(wildcard $(ARGS_FILE)) $(FORCE_DEP)


.PHONY: help doctor setup lock image image-push data import plan pretrain lora export eval demo demo-web \
  handoff all tensorboard test test-all lint fmt bench-data clean distclean .FORCE

help: ## list the targets and knobs
	@echo "jpqwen: teach Qwen2.5-0.5B Japanese (NeMo 2.0). RUNTIME=$(RUNTIME) WORK_DIR=$(WORK_DIR)"
	@echo
	@echo "Targets (stages run in this order; each needs the ones before it):"
	@grep -hE '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Knobs (make TARGET KNOB=value):"
	@grep -hE '^[A-Z_]+ +\?=.*## ' $(MAKEFILE_LIST) | sed -E 's/^([A-Z_]+) +\?= *([^#]*)## (.*)/\1\t\3 [\2]/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'

# ---- environment -------------------------------------------------------------
setup: ## prepare the runtime: the local .venv, or the Docker image
ifeq ($(RUNTIME),docker)
	$(MAKE) image
else
	$(MAKE) $(VENV)/.installed
endif

$(VENV)/.installed: pyproject.toml requirements/cpu.lock
	@test -n "$(PYTHON)" || { echo "jpqwen: need python3.11 (or python3 >= 3.10) on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c requirements/cpu.lock -e '.[nemo,curator,hf,test]'
	@touch $@

lock: ## re-resolve requirements/cpu.lock from pyproject's extras (needs the registry)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q -c requirements/lock-pins.txt -e '.[nemo,curator,hf,test]'
	{ echo "# Lock for the local (RUNTIME=local) virtualenv: CPython 3.11, CPU torch."; \
	  echo "# Regenerate: make lock  (resolves pyproject extras [nemo,curator,hf,test] afresh)"; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^jpqwen'; } > requirements/cpu.lock
	rm -rf .lock-venv

image: ## build the stage image FROM the pinned NeMo image
	$(COMPOSE) build stage

image-push: ## tag and push the image so the team runs identical bits (REGISTRY=...)
	@test -n "$(REGISTRY)" || { echo "set REGISTRY=<your registry>/<namespace>" >&2; exit 1; }
	docker tag $(IMAGE) $(REGISTRY)/$(IMAGE)
	docker push $(REGISTRY)/$(IMAGE)

doctor: | $(RUNTIME_DEP) ## what this environment can run (GPU, NeMo, TE, W&B mode)
	$(RUN_PY) -m pipeline.doctor

# ---- the workflow ------------------------------------------------------------
data: $(STAMPS)/data.json ## LLM-jp ja_wiki (or sample) -> filters -> dedup -> Megatron .bin/.idx
$(STAMPS)/data.json: $(STAGE_DEPS) | $(RUNTIME_DEP)
	$(call run_stage,data)

# GPU stages check for a GPU first, before any prerequisite runs, so a machine
# without one stops in seconds with a message rather than after `make data`.
need-gpu-%: | $(RUNTIME_DEP)
	$(if $(RUNTIME_NOTE),@$(RUNTIME_NOTE))
	$(if $(DRY_RUN),@echo '$(RUN_PY) -m pipeline.doctor --quiet --require-gpu --stage $*',@$(RUN_PY) -m pipeline.doctor --quiet --require-gpu --stage $*)

import: need-gpu-import $(STAMPS)/import.json ## Qwen2.5-0.5B from Hugging Face -> NeMo checkpoint (GPU)
$(STAMPS)/import.json: $(STAGE_DEPS) | $(RUNTIME_DEP)
	$(call run_stage,import_model)

plan: ## write the resolved import/pretrain/lora recipes to WORK_DIR/plans (no GPU needed)
	$(call run_stage,plan)

pretrain: need-gpu-pretrain $(STAMPS)/pretrain.json ## continual pretraining from the imported weights (GPU)
$(STAMPS)/pretrain.json: $(STAMPS)/data.json $(STAMPS)/import.json $(STAGE_DEPS) | $(RUNTIME_DEP)
	$(call run_stage,pretrain)

lora: need-gpu-lora $(STAMPS)/lora.json ## LoRA on the continued model (GPU)
$(STAMPS)/lora.json: $(STAMPS)/pretrain.json $(STAGE_DEPS) | $(RUNTIME_DEP)
	$(call run_stage,lora)

export: need-gpu-export $(STAMPS)/export.json ## NeMo -> Hugging Face (continued, LoRA merged) + parity check (GPU)
$(STAMPS)/export.json: $(STAMPS)/lora.json $(STAGE_DEPS) | $(RUNTIME_DEP)
	$(call run_stage,export)

eval: $(STAMPS)/eval.json ## bits/char (ja + en) and generations for base, continued, LoRA
$(STAMPS)/eval.json: $(STAMPS)/export.json $(STAMPS)/data.json $(STAGE_DEPS) | $(RUNTIME_DEP)
	$(call run_stage,eval)

handoff: $(STAMPS)/handoff.json ## verified HF model + model card + manifest for the SFT/DPO team
$(STAMPS)/handoff.json: $(STAMPS)/eval.json $(STAGE_DEPS) | $(RUNTIME_DEP)
	$(call run_stage,handoff)

demo: $(STAMPS)/export.json | $(RUNTIME_DEP) ## the stages side by side on fixed prompts, timed (terminal)
	$(call run_stage,demo)

demo-web: ## the demo as a web page (compose service `demo`, port 7860)
ifeq ($(RUNTIME),docker)
	$(COMPOSE) up demo
else
	$(MAKE) demo EXTRA_ARGS="--web $(EXTRA_ARGS)"
endif

tensorboard: ## TensorBoard on WORK_DIR/runs (port 6006)
ifeq ($(RUNTIME),docker)
	$(COMPOSE) up tensorboard
else
	$(VENV)/bin/tensorboard --logdir $(WORK_DIR)/runs --port 6006
endif

all: ## the whole chain; on a machine without a GPU, the CPU stages then a clear stop
	$(MAKE) data plan
	@if $(RUN_PY) -m pipeline.doctor --quiet --require-gpu --stage import; then \
	  $(MAKE) handoff demo; \
	else \
	  echo "jpqwen all: data and plan are done; import/pretrain/lora/export/eval/handoff need an NVIDIA GPU (see above)."; \
	fi

# ---- development -------------------------------------------------------------
test: $(VENV)/.installed ## run the tests (creates .venv first); markers gpu and slow are deselected
	$(VPY) -m pytest $(PYTEST_ARGS)

test-all: $(VENV)/.installed ## the tests including slow ones (gpu ones run only where a GPU is)
	$(VPY) -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: $(VENV)/.installed ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.installed ## format with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-data: $(VENV)/.installed ## data pipeline benchmark vs Megatron-LM's preprocess -> bench/results/data.{json,md}
	$(VPY) -m bench.data $(if $(MEGATRON_LM),--megatron-lm $(MEGATRON_LM))

clean: ## remove caches (never WORK_DIR)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean ## also remove the virtualenv
	rm -rf $(VENV)

.FORCE:
