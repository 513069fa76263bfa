"""A custom reward, registered at runtime through a plugin object, then used like a built-in.

    python examples/custom_reward_plugin.py [--out DIR]

A packaged plugin exposes the same hook through the ``psychohistory`` entry-point group (see
``plugins/psychohistory-brevity`` and the plugin guide, docs/plugins.md); registering an
object at runtime is handy in notebooks, scripts and tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import psychohistory as ph
from psychohistory.rewards import CompositeReward, completion_text


class DepthReward:
    """1.0 for a tree that reaches ``min_depth`` levels, less for shallower ones.

    Rewards are small picklable callables with TRL's contract and a stable ``__name__``
    (TRL logs each reward under it). Unparsable output gets 0.0 here: the built-in
    ``format`` reward already penalises it.
    """

    def __init__(self, *, min_depth: int = 2) -> None:
        if min_depth < 1:
            raise ValueError(f"min_depth must be >= 1, got {min_depth}")
        self.min_depth = min_depth
        self.__name__ = "depth"

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        values: list[float | None] = []
        for completion in completions:
            try:
                tree = ph.parse_tree(completion_text(completion), seed="(seed)")
            except ph.TreeParseError:
                values.append(0.0)
                continue
            values.append(min(1.0, tree.depth / self.min_depth))
        return values


class DepthPlugin:
    """A plugin is any object (or module) with hook implementations."""

    @ph.hookimpl
    def register_rewards(self, register: Any) -> None:
        register("depth", DepthReward)


def main(argv: list[str] | None = None) -> dict[str, list[float | None]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write rewards.json here")
    args = parser.parse_args(argv)

    pm = ph.get_plugin_manager()
    plugin = DepthPlugin()
    pm.register(plugin, name="depth-example")
    try:
        # now a registered name, with options, like any built-in reward
        depth = ph.get_reward("depth", min_depth=3)
        print(depth, "registered by", depth.plugin)

        case = ph.load_dataset("historical")[0]
        completions = [
            case.to_tree(probability=0.6).to_json(),  # the real tree: deep and right
            json.dumps({"seed": case.seed, "children": [
                {"event": "Something happens", "probability": 0.5}]}),  # shallow and vague
            "I would rather not forecast.",  # unparsable
        ]
        # mixed with built-ins: each part's values are kept for logging
        mix = CompositeReward([ph.get_reward("calibration", matcher="fuzzy"),
                               ph.get_reward("format"), depth], weights=[1.0, 0.25, 0.5])
        totals = mix(completions, case=[case] * len(completions))
        values = {"total": totals, **mix.last_values}
        for name, row in values.items():
            print(f"{name:12s}", [None if v is None else round(v, 3) for v in row])

        # the same name works in training: ph.Trainer(rewards=["calibration", "depth"], ...)
        # and in a plain trl.GRPOTrainer(reward_funcs=[ph.get_reward("depth")], ...)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "rewards.json").write_text(json.dumps(values, indent=2) + "\n")
            print("wrote", args.out / "rewards.json")
        return values
    finally:
        pm.unregister(plugin)  # leave the process as we found it


if __name__ == "__main__":
    main()
