"""What a run measured: figures with their targets and raw ceilings, grouped by scenario."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CPU_UNIT = "ms/1,000 tasks"  # CPU time per 1,000 tasks drained (the same number as µs per task)


@dataclass(frozen=True)
class Target:
    """A figure's goal: at least (`>=`) or at most (`<=`) `value`."""

    op: Literal[">=", "<="]
    value: float

    def met_by(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.value if self.op == ">=" else value <= self.value

    def __str__(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:,.0f}" if self.value >= 10 else f"{sign} {self.value:g}"


@dataclass
class Figure:
    """One measured number. `raw_key` names the raw-ceiling figure of the same work, if any."""

    key: str
    label: str
    value: float
    unit: str
    target: Target | None = None
    raw_key: str | None = None
    # value / raw to reach (ratio_op ">=": a throughput, the least share of the raw ceiling) or to
    # stay within ("<=": a cost, as CPU per task, at most so many times the peer's)
    ratio_target: float | None = None
    ratio_op: Literal[">=", "<="] = ">="
    compared_with: str = "raw"  # what `raw_key` names, in the target's words ("raw", "pgqueuer")
    raw: float | None = None  # filled in by the runner once the ceiling is measured
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.raw is None or not self.raw or math.isnan(self.value):
            return None
        return self.value / self.raw

    @property
    def met(self) -> bool | None:
        """Whether every target of this figure is met; None when it has none."""
        checks: list[bool] = []
        if self.target is not None:
            checks.append(self.target.met_by(self.value))
        if self.ratio_target is not None:
            ratio = self.ratio
            checks.append(ratio is not None and Target(self.ratio_op, self.ratio_target).met_by(ratio))
        return all(checks) if checks else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = str(self.target) if self.target else None
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


@dataclass
class ScenarioResult:
    """A scenario's figures; `lost` counts tasks accepted but not found (or not finished) in the end."""

    name: str
    title: str
    completed: bool = False
    lost: int = 0
    tasks: int = 0  # tasks the scenario checked
    seconds: float = 0.0
    error: str = ""
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "completed": self.completed,
            "lost": self.lost,
            "tasks": self.tasks,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "figures": [f.to_json() for f in self.figures],
            "details": self.details,
        }


@dataclass
class Report:
    quick: bool
    machine: dict[str, Any]
    scenarios: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every scenario completed and no task was lost (speed is never asserted)."""
        return all(s.completed and s.lost == 0 for s in self.scenarios)

    def figures(self) -> dict[str, Figure]:
        return {f.key: f for s in self.scenarios for f in s.figures}

    def link_ceilings(self) -> None:
        """Give every figure the raw ceiling of its work (measured in this same run)."""
        figures = self.figures()
        for figure in figures.values():
            raw = figures.get(figure.raw_key) if figure.raw_key else None
            figure.raw = raw.value if raw is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "machine": self.machine,
            "scenarios": [s.to_json() for s in self.scenarios],
        }
