"""Built-in rewards."""

from __future__ import annotations

from typing import Any

from psychohistory.hookspecs import hookimpl


@hookimpl
def register_rewards(register: Any) -> None:
    from psychohistory.rewards import (
        CalibrationReward,
        DiversityReward,
        FormatReward,
        SharpnessReward,
    )

    register("calibration", CalibrationReward)
    register("sharpness", SharpnessReward)
    register("diversity", DiversityReward)
    register("format", FormatReward)
