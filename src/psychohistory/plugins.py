"""The plugin manager: built-ins and installed plugins register matchers, rewards and backends.

Plugins load lazily, on the first lookup, from the ``psychohistory`` entry-point group.
``PSYCHOHISTORY_LOAD_PLUGINS`` (comma-separated entry-point or distribution names; empty for
none) limits which installed plugins load. ``PSYCHOHISTORY_TRACE_PLUGINS=1`` prints every hook
call and registration to stderr. An installed plugin that fails to import, or implements a hook
that does not exist, is skipped with a one-line warning (logger ``psychohistory.plugins``)
naming it, the real hooks and how to leave it out, so it never breaks the other plugins or the
CLI.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from psychohistory import hookspecs
from psychohistory.errors import PluginError, RewardError, UnknownNameError

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "CheckedMatcher",
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

if TYPE_CHECKING:
    CheckedMatcher: type  # defined on first use, see __getattr__ below

hookimpl = hookspecs.hookimpl
ENTRY_POINT_GROUP = "psychohistory"
DEFAULT_PLUGINS = (
    "psychohistory.default_plugins.matchers",
    "psychohistory.default_plugins.rewards",
    "psychohistory.default_plugins.backends",
)
# kind -> hook that fills it
_HOOKS = {"matcher": "register_matchers", "reward": "register_rewards", "backend": "register_backends"}

HOOK_NAMES = tuple(sorted(name for name, obj in vars(hookspecs).items()
                          if hasattr(obj, "psychohistory_spec")))
logger = logging.getLogger("psychohistory.plugins")

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
    chosen = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is None or ep.name in allowed or dist in allowed:
            chosen.append(ep)
    skipped: list[tuple[Any, str]] = []
    for ep in chosen:
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            skipped.append((ep, f"importing {ep.value!r} failed with {type(exc).__name__}: "
                                f"{exc}"))
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (pluggy.PluginValidationError, ValueError) as exc:  # a hook's bad signature
            skipped.append((ep, str(exc)))
            continue
        problem = _hook_problem(pm, plugin)
        if problem is not None:
            pm.unregister(plugin)
            skipped.append((ep, problem))
            continue
        if ep.dist is not None:
            _distributions[ep.name] = f"{ep.dist.name} {ep.dist.version}"
    loaded = sorted({ep.name for ep in chosen if pm.has_plugin(ep.name)})
    for ep, problem in sorted(skipped, key=lambda pair: pair[0].name):
        _warn_skipped(ep, problem, loaded)


def _hook_problem(pm: pluggy.PluginManager, plugin: Any) -> str | None:
    """Why ``plugin`` implements no hook that exists (a misspelt name), or ``None``."""
    hooks = ", ".join(HOOK_NAMES)
    unknown = [caller.name for caller in pm.get_hookcallers(plugin) or []
               if not caller.has_spec() and any(
                   impl.plugin is plugin and not impl.optionalhook
                   for impl in caller.get_hookimpls())]
    if unknown:
        return f"unknown hook {_did_you_mean(unknown)}; the hooks are {hooks}"
    if pm.get_hookcallers(plugin):
        return None
    for attr in dir(plugin):
        close = None if attr.startswith("_") else _close_hook(attr)
        if close is not None:
            return (f"implements no hook; {attr!r} looks like {close!r}: name it so and mark it "
                    f"with @psychohistory.hookimpl; the hooks are {hooks}")
    return f"implements no hook (mark one with @psychohistory.hookimpl); the hooks are {hooks}"


def _close_hook(name: str) -> str | None:
    bare = name.removeprefix("psychohistory_")
    close = difflib.get_close_matches(bare, HOOK_NAMES, n=1, cutoff=0.75)
    return close[0] if close else None


def _did_you_mean(names: list[str]) -> str:
    parts = []
    for name in names:
        close = _close_hook(name)
        parts.append(f"{name!r} (did you mean {close!r}?)" if close else repr(name))
    return ", ".join(parts)


def _warn_skipped(ep: Any, problem: str, loaded: list[str]) -> None:
    """One line: entry point ``ep`` is left out, why, and how to stop loading it."""
    dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
    uninstall = f", or pip uninstall {ep.dist.name}" if ep.dist is not None else ""
    logger.warning(f"psychohistory: warning: skipped plugin {ep.name!r}{dist}: {problem}. To "
                   f"stop loading it, set PSYCHOHISTORY_LOAD_PLUGINS={','.join(loaded)} (the "
                   f"plugins to load, comma-separated; empty for none){uninstall}")


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
    """Build the matcher registered as ``name``, checked so a bad score matrix names its plugin.

    The matcher comes wrapped in a ``CheckedMatcher`` (a ``Matcher`` whose other attributes
    are the wrapped matcher's): a score matrix of the wrong shape, with NaN or infinity, or
    outside [0, 1], and any exception the matcher raises, become a ``PluginError`` naming it.

    >>> get_matcher("exact").match(["The Fed cuts rates."], ["the fed cuts rates"])[0].score
    1.0
    >>> import numpy as np
    >>> from psychohistory.plugins import CheckedMatcher
    >>> class Broken:
    ...     name, threshold = "broken", 0.5
    ...     def score(self, predicted, actual):
    ...         return np.full((len(predicted), len(actual)), np.nan)
    >>> CheckedMatcher(Broken(), name="broken", plugin="mine").score(["a"], ["b", "c"])
    Traceback (most recent call last):
    ...
    psychohistory.errors.PluginError: plugin 'mine': matcher 'broken' score() returned non-finite values (2 of 2: nan at [0, 0])
    """
    matcher, entry = _build("matcher", name, options)
    return _check_matcher(matcher, name=name, plugin=entry.plugin)


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
    """Wraps a reward so an exception or a bad value fails naming the plugin.

    TRL's contract: ``reward(completions, **kwargs) -> list[float | None]``, one value per
    completion; ``None`` means "not applicable" and is passed on. Anything else (a string, a
    dict, ``None`` instead of a list, the wrong length, NaN or infinity) raises
    :class:`~psychohistory.errors.RewardError`. The wrapper keeps the reward's ``__name__``
    (TRL logs under it) and stays picklable.

    >>> CheckedReward(lambda completions, **kw: "0.5", name="text", plugin="mine")(["a"])
    Traceback (most recent call last):
    ...
    psychohistory.errors.RewardError: plugin 'mine': reward 'text' returned a str ('0.5'), expected a list of 1 floats (None where not applicable)
    """

    def __init__(self, reward: Callable[..., Any], *, name: str, plugin: str | None) -> None:
        self.reward = reward
        self.plugin = plugin
        self.__name__ = name

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        who = self.plugin or f"callable {self.__name__!r}"
        n = len(completions)
        try:
            values = self.reward(completions, **kwargs)
            if _is_sequence_of_values(values):
                values = list(values)  # inside the try: a generator may raise as it runs
        except Exception as exc:
            raise RewardError(f"reward {self.__name__!r} raised {type(exc).__name__}: {exc}",
                              plugin=who) from exc
        if not isinstance(values, list):
            raise RewardError(
                f"reward {self.__name__!r} returned {_describe(values)}, expected a list of "
                f"{n} floats (None where not applicable)", plugin=who)
        if len(values) != n:
            raise RewardError(
                f"reward {self.__name__!r} returned {len(values)} values for {n} completions",
                plugin=who)
        checked: list[float | None] = []
        for i, value in enumerate(values):
            if value is None:
                checked.append(None)
                continue
            number = _as_float(value)
            if number is None:
                raise RewardError(f"reward {self.__name__!r} returned {_short(value)} at index "
                                  f"{i}, expected a float or None", plugin=who)
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


def _is_sequence_of_values(values: Any) -> bool:
    # a str or a dict is iterable, but iterating it yields characters or keys, not rewards
    return isinstance(values, Iterable) and not isinstance(values, str | bytes | Mapping)


def _as_float(value: Any) -> float | None:
    """``float(value)`` for numbers (numpy and torch scalars too), ``None`` for anything else."""
    if isinstance(value, bool | str | bytes) or not (
            isinstance(value, int | float) or hasattr(value, "__float__")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # e.g. an array of several numbers
        return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(values: Any) -> str:
    if values is None:
        return "None"
    if isinstance(values, str | bytes):
        return f"a {type(values).__name__} ({_short(values)})"
    return f"a {type(values).__name__}"


# CheckedMatcher subclasses Matcher, whose module imports numpy: the class is defined on first
# use (PEP 562), so ``import psychohistory`` stays free of numpy. It pickles by this name.
def __getattr__(name: str) -> Any:
    if name == "CheckedMatcher":
        return _checked_matcher_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _checked_matcher_class() -> type:
    cls = globals().get("CheckedMatcher")
    if cls is None:
        cls = globals()["CheckedMatcher"] = _define_checked_matcher()
    return cls


def _check_matcher(matcher: Any, *, name: str, plugin: str | None) -> Any:
    cls = _checked_matcher_class()
    return matcher if isinstance(matcher, cls) else cls(matcher, name=name, plugin=plugin)


def _define_checked_matcher() -> type:
    import numpy as np

    from psychohistory.errors import PsychohistoryError
    from psychohistory.matching.base import Matcher, Stage, assign

    own = ("matcher", "plugin", "registered_name")

    class CheckedMatcher(Matcher):
        """Wraps a matcher so an exception or a bad score matrix fails naming the plugin.

        The contract: ``score(predicted, actual)`` is an array of shape
        ``(len(predicted), len(actual))`` of finite values in [0, 1]. A matcher that raises, or
        returns another shape, NaN, infinity or a value outside [0, 1], raises ``PluginError``
        naming the matcher and its plugin; a ``PsychohistoryError`` it raises on purpose (the
        verifier's failed hash check) passes unchanged. Other attributes (``threshold``, a
        cascade's ``verifier``) read and write through to the wrapped matcher.
        """

        def __init__(self, matcher: Any, *, name: str, plugin: str | None) -> None:
            self.__dict__.update(matcher=matcher, plugin=plugin, registered_name=name)

        # ------------------------------------------------------------ transparency
        def __getattr__(self, attr: str) -> Any:
            inner = self.__dict__.get("matcher")
            if inner is None:  # during unpickling, before __dict__ is filled
                raise AttributeError(attr)
            return getattr(inner, attr)

        def __setattr__(self, attr: str, value: Any) -> None:
            if attr in own:
                self.__dict__[attr] = value
            else:
                setattr(self.matcher, attr, value)

        @property
        def name(self) -> str:  # type: ignore[override]
            return str(getattr(self.matcher, "name", self.registered_name))

        @property
        def threshold(self) -> float:  # type: ignore[override]
            return float(self.matcher.threshold)

        def __repr__(self) -> str:
            return repr(self.matcher)

        # --------------------------------------------------------------- checking
        def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return getattr(self.matcher, method)(*args, **kwargs)
            except PsychohistoryError:
                raise
            except Exception as exc:
                raise PluginError(f"matcher {self.registered_name!r} {method}() raised "
                                  f"{type(exc).__name__}: {exc}", plugin=self._who) from exc

        @property
        def _who(self) -> str:
            return self.plugin or f"matcher {self.registered_name!r}"

        def _check(self, scores: Any, shape: tuple[int, ...], call: str) -> np.ndarray:
            where = f"matcher {self.registered_name!r} {call}"
            try:
                array = np.asarray(scores, dtype=float)
            except (TypeError, ValueError) as exc:
                raise PluginError(f"{where} returned {type(scores).__name__}, not an array of "
                                  f"numbers: {exc}", plugin=self._who) from exc
            if array.size == 0 and math.prod(shape) == 0:
                return np.zeros(shape)  # nothing to score: any empty answer will do
            if array.shape != shape:
                raise PluginError(f"{where} returned shape {array.shape}, expected {shape} "
                                  "(predicted x actual)", plugin=self._who)
            bad = ~np.isfinite(array)
            if bad.any():
                first = tuple(int(k) for k in np.argwhere(bad)[0])
                raise PluginError(f"{where} returned non-finite values ({int(bad.sum())} of "
                                  f"{array.size}: {array[first]} at {list(first)})",
                                  plugin=self._who)
            outside = (array < 0.0) | (array > 1.0)
            if outside.any():
                first = tuple(int(k) for k in np.argwhere(outside)[0])
                raise PluginError(f"{where} returned scores outside [0, 1] ({array[first]} at "
                                  f"{list(first)})", plugin=self._who)
            return array

        def score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
            scores = self._call("score", predicted, actual)
            return self._check(scores, (len(predicted), len(actual)), "score()")

        def stage_scores(self, predicted: Sequence[str], actual: Sequence[str]) -> list[Stage]:
            if not callable(getattr(self.matcher, "stage_scores", None)):
                return [Stage(self.name, self.score(predicted, actual), self.threshold)]
            stages = list(self._call("stage_scores", predicted, actual))
            shape = (len(predicted), len(actual))
            return [Stage(s.method, self._check(s.scores, shape,
                                                f"stage_scores() stage {s.method!r}"),
                          s.threshold) for s in stages]

        def match(self, predicted: Sequence[str], actual: Sequence[str], *,
                  threshold: float | None = None) -> list[Any]:
            if getattr(type(self.matcher), "match", None) in (None, Matcher.match):
                limit = self.threshold if threshold is None else threshold
                return assign(self.score(predicted, actual), limit, method=self.name)
            return list(self._call("match", predicted, actual, threshold=threshold))

        def score_blocks(self, blocks: Sequence[tuple[Sequence[str], Sequence[str]]]
                         ) -> list[np.ndarray]:
            blocks = [(list(predicted), list(actual)) for predicted, actual in blocks]
            if getattr(type(self.matcher), "score_blocks", None) in (None, Matcher.score_blocks):
                return [self.score(predicted, actual) for predicted, actual in blocks]
            out = list(self._call("score_blocks", blocks))
            if len(out) != len(blocks):
                raise PluginError(f"matcher {self.registered_name!r} score_blocks() returned "
                                  f"{len(out)} blocks for {len(blocks)}", plugin=self._who)
            return [self._check(scores, (len(p), len(a)), f"score_blocks() block {k}")
                    for k, (scores, (p, a)) in enumerate(zip(out, blocks, strict=True))]

        def score_pairs(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
            if getattr(type(self.matcher), "score_pairs", None) in (None, Matcher.score_pairs):
                return super().score_pairs(left, right)  # through the checked score
            if len(left) != len(right):
                raise ValueError(f"left has {len(left)} strings, right has {len(right)}")
            return self._check(self._call("score_pairs", left, right), (len(left),),
                               "score_pairs()")

    CheckedMatcher.__qualname__ = "CheckedMatcher"
    CheckedMatcher.__module__ = __name__
    return CheckedMatcher


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
