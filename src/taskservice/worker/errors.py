"""A worker's own errors (the transient-error rule lives in rules/transient.py)."""

from __future__ import annotations


class UnknownTaskTypes(ValueError):
    """`--type` named task types this worker's registry does not have (or it has none at all)."""

    def __init__(self, missing: list[str], known: list[str], containers: list[str] | None = None) -> None:
        has = ", ".join(known) if known else "none"
        if containers:
            what = (
                f"--type names container task types, which only the Kubernetes agent runs "
                f"(task-cli serve --kubernetes): {', '.join(containers)}"
            )
        elif missing:
            what = f"--type names task types this worker cannot run: {', '.join(missing)}"
        else:
            what = "this worker has no task types to run"
        super().__init__(
            f"{what} (its task types: {has}; declare more with @task in a module given to --import "
            "or TASK_MODULES, or install a plugin)"
        )
        self.missing, self.known = missing, known
