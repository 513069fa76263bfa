"""The hooks a psychohistory plugin can implement. Each takes a ``register`` callback."""

from __future__ import annotations

from typing import Any

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("psychohistory")
hookimpl = HookimplMarker("psychohistory")


@hookspec
def register_matchers(register: Any) -> None:
    """Register matcher classes: register(name, factory)."""


@hookspec
def register_rewards(register: Any) -> None:
    """Register rewards: register(name, factory)."""


@hookspec
def register_backends(register: Any) -> None:
    """Register execution backends: register(name, factory)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the psychohistory CLI (a click group)."""
