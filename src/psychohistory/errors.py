"""The exceptions psychohistory raises; each carries the context needed to act on it."""

from __future__ import annotations

from pathlib import Path


class PsychohistoryError(Exception):
    """Base class of every error this library raises on purpose.

    >>> issubclass(TreeParseError, PsychohistoryError) and issubclass(TreeParseError, ValueError)
    True
    """


class TreeParseError(PsychohistoryError, ValueError):
    """Model output that is not a valid probability tree.

    ``str(err)`` names the place and the problem, e.g.
    ``children[1].probability: 1.7 is not in [0, 1]``; ``err.path`` holds the place alone.

    >>> err = TreeParseError("1.7 is not in [0, 1]", path="children[1].probability")
    >>> str(err), err.path
    ('children[1].probability: 1.7 is not in [0, 1]', 'children[1].probability')
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class CaseFormatError(PsychohistoryError, ValueError):
    """A bad record in a cases (or trees) file, with the file and 1-based line.

    >>> err = CaseFormatError("seed: Field required", path="cases.jsonl", line=3)
    >>> str(err), err.line
    ('cases.jsonl:3: seed: Field required', 3)
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)


class PluginError(PsychohistoryError):
    """A plugin misbehaved: it raised, registered a duplicate, or returned bad values.

    >>> str(PluginError("register_rewards raised KeyError", plugin="my-plugin"))
    "plugin 'my-plugin': register_rewards raised KeyError"
    """

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}" if plugin else message)


class UnknownNameError(PsychohistoryError, KeyError):
    """Lookup of a matcher, reward or backend name that nothing registered.

    >>> err = UnknownNameError("reward", "calibrashun", ["format", "calibration"])
    >>> isinstance(err, KeyError), str(err)
    (True, "unknown reward 'calibrashun'; registered rewards: calibration, format")
    """

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        listed = ", ".join(self.available) or "(none)"
        super().__init__(f"unknown {kind} {name!r}; registered {kind}s: {listed}")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class RewardError(PluginError):
    """A reward function raised or returned something that is not a finite float or None.

    >>> from psychohistory.plugins import CheckedReward
    >>> CheckedReward(lambda completions, **kw: [float("nan")], name="mine", plugin=None)(["x"])
    Traceback (most recent call last):
    ...
    psychohistory.errors.RewardError: plugin "callable 'mine'": reward 'mine' returned non-finite nan at index 0
    """


class ConfigError(PsychohistoryError, ValueError):
    """An option with a value that cannot work; the message says what to change.

    >>> from psychohistory.training.config import TrainerConfig
    >>> TrainerConfig(quantize="8bit")
    Traceback (most recent call last):
    ...
    psychohistory.errors.ConfigError: quantize must be one of (None, '4bit'), got '8bit'
    """


class MemoryPlanError(PsychohistoryError):
    """A run that the memory planner says cannot fit the chosen GPU (``.plan`` has the numbers).

    >>> from psychohistory.backends.memory import plan_memory, require_fit
    >>> require_fit(plan_memory("gpt-oss-20b", gpu="A10G"))
    Traceback (most recent call last):
    ...
    psychohistory.errors.MemoryPlanError: refusing to start: GPT-OSS-20B grpo: ... does NOT fit on A10G (22... GiB)
    ...
    """

    def __init__(self, message: str, plan: object | None = None) -> None:
        self.plan = plan
        super().__init__(message)
