"""psychohistory: train and evaluate language models that forecast probability trees.

``import psychohistory`` stays light (numpy, pydantic, pluggy, rapidfuzz); the training,
inference and backend names load torch and friends only when first used.

>>> import psychohistory as ph
>>> tree = ph.parse_tree('{"seed": "S", "children": [{"event": "E", "probability": 0.3}]}')
>>> tree.children[0].probability
0.3
"""

from __future__ import annotations

import importlib
from typing import Any

from psychohistory.cases import Case, CaseFormatError, Outcome, load_cases, save_cases
from psychohistory.datasets import load_dataset
from psychohistory.errors import (
    ConfigError,
    MemoryPlanError,
    PluginError,
    PsychohistoryError,
    RewardError,
    UnknownNameError,
)
from psychohistory.hookspecs import hookimpl
from psychohistory.plugins import get_backend, get_matcher, get_plugin_manager, get_reward
from psychohistory.tree import EventNode, ProbabilityTree, TreeLimits, TreeParseError, parse_tree

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access (PEP 562)
_LAZY = {
    "TreeEvaluator": "psychohistory.evaluation",
    "TreeMetrics": "psychohistory.evaluation",
    "EvaluationReport": "psychohistory.evaluation",
    "Trainer": "psychohistory.training.trainer",
    "TrainerConfig": "psychohistory.training.config",
    "TrainResult": "psychohistory.training.trainer",
    "sft": "psychohistory.training.sft",
    "to_grpo_dataset": "psychohistory.training.data",
    "ProbabilityTreeInference": "psychohistory.inference",
    "plan_memory": "psychohistory.backends.memory",
    "MemoryPlan": "psychohistory.backends.memory",
}

__all__ = [
    "Case",
    "CaseFormatError",
    "ConfigError",
    "EvaluationReport",
    "EventNode",
    "MemoryPlan",
    "MemoryPlanError",
    "Outcome",
    "PluginError",
    "ProbabilityTree",
    "ProbabilityTreeInference",
    "PsychohistoryError",
    "RewardError",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TreeEvaluator",
    "TreeLimits",
    "TreeMetrics",
    "TreeParseError",
    "UnknownNameError",
    "__version__",
    "get_backend",
    "get_matcher",
    "get_plugin_manager",
    "get_reward",
    "hookimpl",
    "load_cases",
    "load_dataset",
    "parse_tree",
    "plan_memory",
    "save_cases",
    "sft",
    "to_grpo_dataset",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'psychohistory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
