"""Typed configuration: one dataclass per command, loadable from YAML, overridable on the CLI.

A command declares ``@dataclass class TrainConfig`` with defaults and ``field(metadata={"help":
...})``; ``add_config_arguments`` turns the fields into ``--kebab-case`` options whose default is
"not given", and ``resolve_config`` layers defaults < YAML file (``--config``) < CLI options.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from vcfnet.errors import ConfigError
from vcfnet.io.atomic import atomic_write_text

T = TypeVar("T")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _converter(tp: Any):
    """Return a function converting a str (CLI) or YAML value to the field type."""
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)

    def convert(value: Any) -> Any:
        if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
            if optional:
                return None
            raise ConfigError("value must not be empty")
        if origin is Literal:
            choices = typing.get_args(tp)
            if value not in choices:
                raise ConfigError(f"{value!r} is not one of {', '.join(map(str, choices))}")
            return value
        if origin in (tuple, list):
            (item_type, *_rest) = typing.get_args(tp) or (str,)
            items = value.split(",") if isinstance(value, str) else list(value)
            conv = _converter(item_type)
            out = [conv(v) for v in items]
            return tuple(out) if origin is tuple else out
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"1", "true", "yes", "on"}:
                return True
            if str(value).lower() in {"0", "false", "no", "off"}:
                return False
            raise ConfigError(f"{value!r} is not a boolean (use true or false)")
        if tp is Path:
            return Path(value)
        if tp in (int, float, str):
            try:
                return tp(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{value!r} is not a valid {tp.__name__}") from exc
        return value

    return convert


def config_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Map field name -> (field, resolved type annotation)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()
) -> None:
    """Add ``--config`` and one ``--field-name`` option per dataclass field (not in ``skip``)."""
    if not any(a.dest == "config" for a in parser._actions):
        parser.add_argument(
            "--config", type=Path, default=None, help="YAML file with options (CLI options win)"
        )
    for name, (f, tp) in config_fields(cls).items():
        if name in skip:
            continue
        inner, _ = _unwrap_optional(tp)
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        help_text = f.metadata.get("help", "")
        if default is not None:
            help_text = f"{help_text} (default: {_fmt(default)})".strip()
        flag = "--" + name.replace("_", "-")
        if inner is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif typing.get_origin(inner) is Literal:
            parser.add_argument(
                flag, dest=name, choices=typing.get_args(inner), default=None, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=None,
                metavar=f.metadata.get("metavar", name.upper()),
                help=help_text,
            )


def _fmt(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return str(value)


def build_config(cls: type[T], values: Mapping[str, Any] | None = None) -> T:
    """Build ``cls`` from a mapping (YAML data), converting types and rejecting unknown keys."""
    values = dict(values or {})
    fields = config_fields(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; "
            f"valid: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in values.items():
        try:
            kwargs[name] = _converter(fields[name][1])(value)
        except ConfigError as exc:
            raise ConfigError(f"option {name}: {exc}") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid options: {exc}") from exc


def load_config(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping of options (``-`` separated or ``_`` separated keys)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolve_config(cls: type[T], args: argparse.Namespace, **fixed: Any) -> T:
    """defaults < ``args.config`` YAML < CLI options given < ``fixed`` keyword values."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(load_config(args.config))
    for name in config_fields(cls):
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    values.update({k: v for k, v in fixed.items() if v is not None})
    return build_config(cls, values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain YAML/JSON-safe dict of a config dataclass (Paths as str, tuples as lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def save_config(cfg: Any, path: Path | str) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


#: file name of the resolved options saved beside a command's outputs
CONFIG_NAME = "config.yaml"


def save_command_config(cfg: Any, out: Path | str) -> Path:
    """Save a command's resolved options as YAML beside its outputs: ``OUT/config.yaml`` when
    ``out`` is a folder, ``OUT.config.yaml`` beside a single output file. Returns the path."""
    out = Path(out)
    path = out / CONFIG_NAME if out.is_dir() else out.with_name(f"{out.name}.{CONFIG_NAME}")
    save_config(cfg, path)
    return path
