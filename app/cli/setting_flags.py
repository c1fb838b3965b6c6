"""Command-line flags generated from the settings declaration, so bounds and help text live in one place."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from app.settings import SettingsError, describe_validation


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], fields: list[str], *,
              dest_prefix: str) -> None:
    """Add ``--field-name`` options for ``fields`` of a settings model; unset flags leave the setting alone."""
    for name in fields:
        info = model.model_fields[name]
        kind = _scalar_type(info.annotation)
        default = info.get_default(call_default_factory=True)
        help_text = f"{info.description} (default: {default})"
        flag = "--" + name.replace("_", "-")
        if kind is list:
            parser.add_argument(flag, dest=dest_prefix + name, action="append", default=None,
                                metavar=name.upper(), help=help_text)
        elif kind is bool:  # --name / --no-name
            parser.add_argument(flag, dest=dest_prefix + name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=dest_prefix + name, type=kind, default=None, metavar=name.upper(),
                                help=help_text)


def apply_flags(base: BaseModel, args: argparse.Namespace, *, dest_prefix: str) -> Any:
    """A copy of ``base`` with the values of the flags that were given, validated against the declared bounds.

    Raises:
        SettingsError: a value is out of bounds (the message names the flag).
    """
    updates = {k[len(dest_prefix):]: v for k, v in vars(args).items() if k.startswith(dest_prefix) and v is not None}
    if not updates:
        return base
    try:
        return type(base).model_validate({**base.model_dump(), **updates})
    except ValidationError as exc:
        message = describe_validation(exc)
        for name in updates:
            message = message.replace(f"{name}:", f"--{name.replace('_', '-')}:")
        raise SettingsError(f"Invalid option: {message}") from exc


def _scalar_type(annotation: Any) -> type:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_type(args[0])
    if origin is list:
        return list
    return annotation if annotation in (int, float, str, bool) else str
