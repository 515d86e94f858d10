"""The environment: `.env` loading and keeping secrets out of logs.

`.env` (copied from `.env.example`) is read by Docker Compose for the
container and by :func:`load_dotenv` for ``RUNTIME=local``. Variables already
set in the process environment win over `.env`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from jpqwen.config import REPO_ROOT

# Variables whose values must never be printed, logged or written to outputs.
SECRET_NAMES = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY")
# whole name parts only: HF_TOKEN, WANDB_API_KEY, AWS_SECRET_ACCESS_KEY, DB_PASSWORD are secrets;
# TOKENIZERS_PARALLELISM (value "false") and the TOKENS knob are not (found on the lent GPU: "false"
# occurs in every tokenizer.json, and handoff refused the package)
_SECRET_PATTERN = re.compile(
    r"(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY|AUTH)(?:_|$)", re.IGNORECASE
)


def load_dotenv(path: str | os.PathLike | None = None) -> Path | None:
    """Load ``.env`` into ``os.environ`` without overriding what is already set."""
    from dotenv import load_dotenv as _load

    env_path = Path(path) if path else Path(os.environ.get("JPQWEN_ENV_FILE", REPO_ROOT / ".env"))
    if not env_path.is_file():
        return None
    _load(env_path, override=False)
    return env_path


def is_secret(name: str) -> bool:
    return name in SECRET_NAMES or bool(_SECRET_PATTERN.search(name))


def secret_items(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Secret variable name -> value, for values long enough to be recognised (>= 4 characters)."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if is_secret(k) and v and len(v) >= 4}


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    return list(secret_items(environ).values())


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace every secret value found in ``text`` with ``***``."""
    for value in sorted(secret_values(environ), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def public_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with secret values masked, for recording what ran."""
    env = os.environ if environ is None else environ
    return {k: ("***" if is_secret(k) and v else v) for k, v in env.items()}
