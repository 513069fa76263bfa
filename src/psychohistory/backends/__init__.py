"""Execution backends: where training runs (``local``, ``accelerate``, ``modal``)."""
