"""NeMo 2.0 side of jpqwen: import, continual pretraining and LoRA recipes, and the plan.

Modules: ``settings`` (typed config sections), ``environment`` (what this stack
can run), ``inputs`` (upstream stage outputs), ``recipes`` (NeMo-Run recipes),
``lora_data`` (instruction jsonl), ``import_ckpt`` / ``train`` / ``plan`` (stage
bodies called by ``pipeline/*.py``). NeMo is imported lazily, inside functions.
"""
