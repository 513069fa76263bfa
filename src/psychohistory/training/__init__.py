"""Training: model loading, prompts, dataset builders, SFT and GRPO (the ``[train]`` extra)."""
