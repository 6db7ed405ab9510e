"""The one table of a run, drawn with rich."""

from __future__ import annotations

import math

from rich.table import Table

from taskservice.bench.results import CPU_UNIT, Figure, Report


def number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit in {"tasks/s", "starts", "statements", "calls", "requests"}:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"


def _met(figure: Figure) -> str:
    met = figure.met
    return "" if met is None else ("[green]yes[/green]" if met else "[red]NO[/red]")


def _target(figure: Figure) -> str:
    parts = [str(figure.target)] if figure.target else []
    if figure.ratio_target is not None:
        ratio = figure.ratio_target
        shown = f"{ratio:.0%} of" if ratio < 1 else f"{ratio:g}x"
        parts.append(f"{'≥' if figure.ratio_op == '>=' else '≤'} {shown} {figure.compared_with}")
    return ", ".join(parts)


def _share(figure: Figure) -> str:
    """Of a throughput, the share of the raw ceiling reached; of a latency or a CPU time (or any figure
    whose ratio is to stay within its target), how many times the raw one."""
    ratio = figure.ratio
    if ratio is None:
        return ""
    if figure.ratio_op == "<=" or figure.unit == CPU_UNIT:  # costs compared near 1x: two decimals
        return f"{ratio:.2f}x"
    return f"{ratio:.1f}x" if figure.unit in {"ms", "µs"} or ratio >= 1 else f"{ratio:.0%}"


def render(report: Report) -> Table:
    table = Table(title=f"taskservice bench{' --quick' if report.quick else ''}", title_justify="left")
    table.add_column("Measure")
    table.add_column("Value", justify="right")
    table.add_column("Unit")
    table.add_column("Raw ceiling (or peer)", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("Target")
    table.add_column("Met")
    for scenario in report.scenarios:
        state = "" if scenario.completed else "  [red](did not complete)[/red]"
        lost = f"  [red]({scenario.lost} task(s) lost)[/red]" if scenario.lost else ""
        table.add_section()
        table.add_row(f"[bold]{scenario.title}[/bold]{state}{lost}")
        for figure in scenario.figures:
            table.add_row(
                f"  {figure.label}",
                number(figure.value, figure.unit),
                figure.unit,
                number(figure.raw, figure.unit) if figure.raw is not None else "",
                _share(figure),
                _target(figure),
                _met(figure),
            )
    return table
