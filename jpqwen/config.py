"""Config: one YAML preset per run, overridable from the command line.

A preset (``configs/default.yaml``) has one section per stage. A preset may
start from another with ``extends: other.yaml`` (path relative to the file).
``--set section.key=value`` overrides one field; the value is parsed as YAML,
so ``--set pretrain.max_steps=20`` gives an int.

Each stage turns its section into a typed dataclass with :func:`section`, which
rejects unknown keys and names the file they came from.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

from jpqwen.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"

T = TypeVar("T")


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself ({' -> '.join(map(str, _seen))})")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", hint="pass --config configs/<preset>.yaml (see configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent:
        data = _deep_merge(_read_yaml(path.parent / parent, _seen + (path,)), data)
    data.setdefault("_sources", [])
    data["_sources"] = [*data["_sources"], str(path)]
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'pretrain.max_steps=20'`` -> (['pretrain', 'max_steps'], 20)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 2e-5 as a string; a number is meant
        try:
            value = float(value)
        except ValueError:
            pass
    return parts, value


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> dict:
    """Read a preset, apply ``key=value`` overrides, return a plain dict."""
    cfg = _read_yaml(Path(path) if path else DEFAULT_CONFIG)
    for text in overrides or []:
        parts, value = parse_override(text)
        node = cfg
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[parts[-1]] = value
    if overrides:
        cfg["_overrides"] = list(overrides)
    return cfg


def section(cfg: dict, name: str, cls: type[T]) -> T:
    """Build dataclass ``cls`` from ``cfg[name]``; unknown keys are an error."""
    raw = cfg.get(name) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(cfg)}: section {name!r} must be a mapping")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(
            f"{_where(cfg)}: unknown key(s) in section {name!r}: {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(fields))}",
        )
    try:
        return cls(**raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_where(cfg)}: section {name!r}: {exc}") from None


def _where(cfg: dict) -> str:
    return " + ".join(cfg.get("_sources", [])) or "config"


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fingerprint(*parts: Any) -> str:
    """A stable sha256 of JSON-able parts (configs, input file stats...)."""
    blob = json.dumps([to_jsonable(p) for p in parts], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
