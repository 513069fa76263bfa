"""The plugin manager: built-ins and installed plugins register matchers, rewards and backends.

Plugins load lazily, on the first lookup, from the ``psychohistory`` entry-point group.
``PSYCHOHISTORY_LOAD_PLUGINS`` (comma-separated entry-point or distribution names; empty for
none) limits which installed plugins load. ``PSYCHOHISTORY_TRACE_PLUGINS=1`` prints every hook
call and registration to stderr.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from psychohistory import hookspecs
from psychohistory.errors import PluginError, RewardError, UnknownNameError

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "CheckedReward",
    "Registration",
    "get_backend",
    "get_matcher",
    "get_plugin_manager",
    "get_reward",
    "hookimpl",
    "list_registered",
    "plugin_summary",
    "reset_plugin_manager",
]

hookimpl = hookspecs.hookimpl
ENTRY_POINT_GROUP = "psychohistory"
DEFAULT_PLUGINS = (
    "psychohistory.default_plugins.matchers",
    "psychohistory.default_plugins.rewards",
    "psychohistory.default_plugins.backends",
)
# kind -> hook that fills it
_HOOKS = {"matcher": "register_matchers", "reward": "register_rewards", "backend": "register_backends"}

_pm: pluggy.PluginManager | None = None
_cache: dict[tuple[str, tuple[str, ...]], dict[str, Registration]] = {}
_distributions: dict[str, str] = {}  # plugin name -> "dist version", for entry-point plugins


@dataclass(frozen=True)
class Registration:
    """A name some plugin registered, the factory that builds it, and that plugin's name."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str


def _tracing() -> bool:
    return os.environ.get("PSYCHOHISTORY_TRACE_PLUGINS", "") not in ("", "0", "false")


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-ins and allowed entry points loaded.

    >>> "psychohistory.default_plugins.rewards" in dict(get_plugin_manager().list_name_plugin())
    True
    """
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("psychohistory")
        pm.add_hookspecs(hookspecs)
        if _tracing():
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        for module_name in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        _load_entry_points(pm)
        pm.check_pending()
        _pm = pm
    return _pm


def reset_plugin_manager() -> None:
    """Forget the plugin manager so the next lookup loads plugins afresh (tests use this)."""
    global _pm
    _pm = None
    _cache.clear()
    _distributions.clear()


def _allowed_plugins() -> set[str] | None:
    raw = os.environ.get("PSYCHOHISTORY_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = _allowed_plugins()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is not None and ep.name not in allowed and dist not in allowed:
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(f"failed to load entry point {ep.value!r}: {exc}",
                              plugin=ep.name) from exc
        pm.register(plugin, name=ep.name)
        if ep.dist is not None:
            _distributions[ep.name] = f"{ep.dist.name} {ep.dist.version}"


def _registrations(kind: str) -> dict[str, Registration]:
    pm = get_plugin_manager()
    key = (kind, tuple(name for name, _ in pm.list_name_plugin()))
    if key in _cache:
        return _cache[key]
    hook_name = _HOOKS[kind]
    found: dict[str, Registration] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin_name = impl.plugin_name

        def register(name: str, factory: Callable[..., Any], _plugin: str = plugin_name) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"registered a {kind} with an invalid name {name!r}",
                                  plugin=_plugin)
            if not callable(factory):
                raise PluginError(f"registered {kind} {name!r} with a factory that is not callable",
                                  plugin=_plugin)
            if name in found:
                raise PluginError(
                    f"{kind} {name!r} is registered by both {found[name].plugin!r} and {_plugin!r}",
                    plugin=_plugin,
                )
            if _tracing():
                sys.stderr.write(f"psychohistory: {_plugin} registered {kind} {name!r}\n")
            found[name] = Registration(kind, name, factory, _plugin)

        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        caller = pm.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            caller(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"{hook_name} raised {type(exc).__name__}: {exc}",
                              plugin=plugin_name) from exc
    _cache.clear()  # the plugin set changed or this is the first call: drop stale entries
    _cache[key] = found
    return found


def list_registered(kind: str) -> dict[str, Registration]:
    """Every registered ``kind`` ("matcher", "reward" or "backend") by name."""
    if kind not in _HOOKS:
        raise ValueError(f"kind must be one of {sorted(_HOOKS)}, got {kind!r}")
    return dict(_registrations(kind))


def _build(kind: str, name: str, options: dict[str, Any]) -> tuple[Any, Registration]:
    registered = _registrations(kind)
    if name not in registered:
        raise UnknownNameError(kind, name, list(registered))
    entry = registered[name]
    try:
        return entry.factory(**options), entry
    except (TypeError, ValueError) as exc:
        # bad options: keep the type the user can catch, and say which plugin refused them
        raise type(exc)(f"{kind} {name!r} (plugin {entry.plugin!r}): {exc}") from exc
    except Exception as exc:
        raise PluginError(f"building {kind} {name!r} raised {type(exc).__name__}: {exc}",
                          plugin=entry.plugin) from exc


def get_matcher(name: str, **options: Any) -> Any:
    """Build the matcher registered as ``name``.

    >>> get_matcher("exact").match(["The Fed cuts rates."], ["the fed cuts rates"])[0].score
    1.0
    """
    matcher, _ = _build("matcher", name, options)
    return matcher


def get_reward(name: str, **options: Any) -> CheckedReward:
    """Build the reward registered as ``name``, checked so a bad value names its plugin.

    >>> reward = get_reward("format")
    >>> reward.__name__, reward(['{"seed": "S", "children": []}', "no tree here"])
    ('format', [1.0, -1.0])
    """
    reward, entry = _build("reward", name, options)
    return CheckedReward(reward, name=name, plugin=entry.plugin)


def get_backend(name: str, **options: Any) -> Any:
    """Build the execution backend registered as ``name``.

    >>> get_backend("local")
    LocalBackend()
    """
    backend, _ = _build("backend", name, options)
    return backend


class CheckedReward:
    """Wraps a reward so an exception or a non-finite value fails naming the plugin.

    TRL's contract: ``reward(completions, **kwargs) -> list[float | None]``. The wrapper keeps
    the reward's ``__name__`` (TRL logs under it) and stays picklable.
    """

    def __init__(self, reward: Callable[..., Any], *, name: str, plugin: str | None) -> None:
        self.reward = reward
        self.plugin = plugin
        self.__name__ = name

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        who = self.plugin or f"callable {self.__name__!r}"
        try:
            values = self.reward(completions, **kwargs)
        except Exception as exc:
            raise RewardError(f"reward {self.__name__!r} raised {type(exc).__name__}: {exc}",
                              plugin=who) from exc
        values = list(values) if isinstance(values, Iterable) else values
        if not isinstance(values, list) or len(values) != len(completions):
            raise RewardError(
                f"reward {self.__name__!r} returned {_describe(values)} for "
                f"{len(completions)} completions", plugin=who)
        checked: list[float | None] = []
        for i, value in enumerate(values):
            if value is None:
                checked.append(None)
                continue
            if isinstance(value, bool) or (not isinstance(value, int | float) and not hasattr(
                value, "__float__"
            )):
                raise RewardError(f"reward {self.__name__!r} returned {value!r} at index {i}",
                                  plugin=who)
            number = float(value)
            if not math.isfinite(number):
                raise RewardError(
                    f"reward {self.__name__!r} returned non-finite {number} at index {i}",
                    plugin=who)
            checked.append(number)
        return checked

    def __getattr__(self, attr: str) -> Any:
        if attr == "reward":  # during unpickling, before __dict__ is filled
            raise AttributeError(attr)
        return getattr(self.reward, attr)

    def __repr__(self) -> str:
        return f"CheckedReward({self.__name__!r}, plugin={self.plugin!r})"


def _describe(values: Any) -> str:
    if isinstance(values, list):
        return f"{len(values)} values"
    return type(values).__name__


def plugin_summary() -> list[dict[str, Any]]:
    """Each loaded plugin, with what it registers: the data behind ``psychohistory plugins``."""
    pm = get_plugin_manager()
    rows: dict[str, dict[str, Any]] = {}
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
        rows[name] = {"name": name, "hooks": hooks, "distribution": _distributions.get(name),
                      "matchers": [], "rewards": [], "backends": []}
    for kind in _HOOKS:
        for reg in _registrations(kind).values():
            rows[reg.plugin][f"{kind}s"].append(reg.name)
    return list(rows.values())
