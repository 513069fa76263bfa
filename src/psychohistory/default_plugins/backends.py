"""Built-in execution backends."""

from __future__ import annotations

from typing import Any

from psychohistory.hookspecs import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    from psychohistory.backends.accelerate import AccelerateBackend
    from psychohistory.backends.local import LocalBackend

    register("local", LocalBackend)
    register("accelerate", AccelerateBackend)

    def modal_backend(**options: Any) -> Any:  # imports modal only when asked for
        from psychohistory.backends.modal import ModalBackend

        return ModalBackend(**options)

    register("modal", modal_backend)
