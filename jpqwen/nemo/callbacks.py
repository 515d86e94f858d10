"""Lightning callbacks placed into recipes; NeMo-Run builds them inside the training process."""

from __future__ import annotations

import logging

import lightning.pytorch as pl

from jpqwen.nemo.environment import apply_runtime_patches

log = logging.getLogger(__name__)


class RuntimeCompat(pl.Callback):
    """Applies :func:`jpqwen.nemo.environment.apply_runtime_patches` when the trainer is built.

    The torchrun workers NeMo-Run starts are fresh processes; building this
    callback is the first jpqwen code that runs in them, before any checkpoint
    is written.
    """

    def __init__(self):
        super().__init__()
        for what in apply_runtime_patches():
            log.warning("jpqwen runtime patch: %s", what)
