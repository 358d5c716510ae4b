"""Command-line conventions shared by every ``convection`` command (docs/cli.md).

* ``-h`` and ``--help`` both show help (the root's ``help_option_names``, inherited by every
  subcommand's context); ``convection --version`` prints the version.
* Help shows boolean options as flags (``--append``), not ``--append <bool>``, and the usage
  line names arguments the usual way (``convection import [OPTIONS] PATH``, optional ones in
  brackets), not ``{path}``. Every command and group is made with :class:`Command` /
  :class:`Group` (``cls=``) for that.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def _flags_without_type(params: list[Any]) -> list[Any]:
    """A flag takes no value, so its help shows no type: an empty metavar hides it."""
    for param in params:
        if getattr(param, "param_type_name", "") == "option" and (
            getattr(param, "is_flag", False) or getattr(param, "count", False)
        ) and param.metavar is None:
            param.metavar = ""
    return params


def _usage_pieces(params: list[Any]) -> list[str]:
    pieces = ["[OPTIONS]"] if any(getattr(p, "param_type_name", "") == "option" for p in params) else []
    for param in params:
        if getattr(param, "param_type_name", "") != "argument":
            continue
        name = str(param.metavar or param.name).upper()
        if param.nargs != 1:
            name += "..."
        pieces.append(name if param.required else f"[{name}]")
    return pieces


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(list(super().get_params(ctx)))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self.get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(list(super().get_params(ctx)))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage_pieces(self.get_params(ctx)), self.subcommand_metavar]


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("convection")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        from convection.server.app import VERSION

        return VERSION


def show_version(value: bool) -> None:
    if value:
        print(f"convection {version()}")
        raise typer.Exit(0)
