"""Errors a user can act on.

A `JpqwenError` is printed as one clear message (no stack trace) by the stage
runner in `jpqwen.cli`, and the process exits with `exit_code`.
"""

from __future__ import annotations


class JpqwenError(Exception):
    """An error with a message meant for the person running the workflow."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:  # message, then what to do about it
        base = super().__str__()
        return f"{base}\n  hint: {self.hint}" if self.hint else base


class ConfigError(JpqwenError):
    """A config file or override is wrong (names the file and key)."""


class InputError(JpqwenError):
    """Input data is missing or malformed (names the file and line)."""


class NeedsGPUError(JpqwenError):
    """The stage needs an NVIDIA GPU (and the NeMo stack) and none is here."""

    exit_code = 3


class OfflineError(JpqwenError):
    """Something had to be fetched from the network and could not be."""
