"""Rewards with TRL's contract: ``reward(completions, **kwargs) -> list[float | None]``."""

from psychohistory.rewards.base import Reward, as_case, completion_text
from psychohistory.rewards.calibration import CalibrationReward
from psychohistory.rewards.composite import DEFAULT_WEIGHTS, CompositeReward
from psychohistory.rewards.diversity import DiversityReward
from psychohistory.rewards.format import FormatReward
from psychohistory.rewards.sharpness import SharpnessReward

__all__ = [
    "DEFAULT_WEIGHTS",
    "CalibrationReward",
    "CompositeReward",
    "DiversityReward",
    "FormatReward",
    "Reward",
    "SharpnessReward",
    "as_case",
    "completion_text",
]
