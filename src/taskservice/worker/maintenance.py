"""The maintenance job: vacuums our hot tables when the server's autovacuum does not, one process at a time.

Each task leaves dead row versions in several tables (store/maintenance.HOT_TABLES); autovacuum
removes them once a table's dead tuples pass its threshold. When autovacuum is off (for the server,
for one of our tables, or track_counts is off), they pile up: the soak on a server configured so went
from 7,307 tasks/s to 4,428 in ten minutes with 11 million dead tuples (issue 26). So every server and
worker runs this job; each tick reads pg_stat_user_tables once and vacuums at most one table, the one
with the most dead tuples among those past `margin` times autovacuum's threshold for it, and only
when autovacuum will not: it is off for that table, or the table has stayed past the margin for
AUTOVACUUM_VISITS of autovacuum's naptimes (autovacuum is behind). While autovacuum keeps up, it
never vacuums. The VACUUM is throttled and bounded (VacuumLimits), under the retention lock: while
another process holds it (retention deleting, or another process's maintenance), the tick is skipped.
When more tables were due than the one it vacuumed, the next tick comes AGAIN_SECONDS later rather
than a whole interval (autovacuum too does every table due in one visit); when tables were due and
the lock was held, LOCK_HELD_SECONDS later (retention holds it a moment per batch, and under a
backlog it deletes batch after batch: a whole interval would leave the tables to pile up). Dead
tuples a VACUUM could not remove (an older transaction or a replication slot still sees them) are
said once, and the table is due again only once the margin has piled up above them: never a VACUUM
a tick for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from taskservice.background.periodic import Periodic, utc_now
from taskservice.store import Store, TableVacuum, Vacuumed, VacuumLimits, VacuumState

log = structlog.get_logger(__name__)

# With autovacuum on for a table, it gets this many of its visits (autovacuum_naptime each) to bring
# the table back under the margin before the job takes it as behind and vacuums the table itself.
AUTOVACUUM_VISITS = 3
AGAIN_SECONDS = 1.0  # the next tick, when a tick vacuumed one table of several due
LOCK_HELD_SECONDS = 5.0  # the next tick, when tables were due and another process held the lock


class MaintenanceJob(Periodic):
    """Every `interval`, vacuums the one hot table most in need, if any (see the module's docstring),
    on a connection of its own to `url`. `clock` says what time it is (tests move it)."""

    name = "maintenance"

    def __init__(
        self,
        store: Store,
        url: str,
        interval: float,
        margin: float = 2.0,
        limits: VacuumLimits | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(interval)
        self.every = interval  # `interval` is the wait before the next tick: this, or AGAIN_SECONDS
        self.store, self.url, self.margin, self.clock = store, url, margin, clock
        self.limits = limits or VacuumLimits()
        self._past_margin_since: dict[str, datetime] = {}  # tables seen past the margin, since when
        self._held_back: dict[str, int] = {}  # dead tuples our last VACUUM of a table could not remove

    async def tick(self) -> None:
        await self.run_once()

    async def stop(self) -> None:
        # A VACUUM may run for minutes: stopping cancels it (the session ends, and the lock with it).
        if self.task is not None:
            self.task.cancel()
        await super().stop()

    async def run_once(self) -> Vacuumed | None:
        """Vacuum the table most in need now, if one is; what was done, None when nothing was."""
        self.interval = self.every
        due = self.due(await self.store.vacuum_state())
        if not due:
            return None
        table = due[0]
        done = await self.store.vacuum(self.url, table, self.limits)
        if done is None:
            log.debug("maintenance: another process holds the lock; skipping this tick", table=table.table)
            self.interval = min(self.every, LOCK_HELD_SECONDS)
            return None
        self._past_margin_since.pop(table.table, None)
        self._note_held_back(table, done)
        if len(due) > 1:
            self.interval = min(self.every, AGAIN_SECONDS)  # the next of them soon
        figures = {
            "table": done.table,
            "dead_tuples_before": done.dead_before,
            "seconds": round(done.seconds, 3),
        }
        if done.finished:
            log.info("maintenance: vacuumed a table autovacuum did not", **figures)
        else:
            log.warning(
                "maintenance: a VACUUM ran past MAINTENANCE_VACUUM_TIMEOUT and was stopped; "
                "what it did stays, the next tick goes on",
                **figures,
            )
        return done

    def _note_held_back(self, table: TableVacuum, done: Vacuumed) -> None:
        """Remember what a finished VACUUM left past the margin, so as not to vacuum again for it."""
        if not done.finished or done.dead_after <= self.margin * table.autovacuum_at:
            self._held_back.pop(table.table, None)
            return
        self._held_back[table.table] = done.dead_after
        log.warning(
            "maintenance: VACUUM could not remove the dead tuples of a table: an older transaction or a "
            "replication slot still sees them (pg_stat_activity's oldest xact_start, pg_replication_slots)",
            table=table.table,
            dead_tuples_left=done.dead_after,
        )

    def due(self, state: VacuumState) -> list[TableVacuum]:
        """The tables to vacuum, most dead tuples first: those past the margin that autovacuum does
        not vacuum (off for them, or behind). A tick vacuums the first."""
        now = self.clock()
        due = []
        for table in state.tables:
            margin = self.margin * table.autovacuum_at
            if table.dead <= margin:
                self._held_back.pop(table.table, None)  # vacuumed since, by anyone
            if table.vacuuming or table.dead <= self._held_back.get(table.table, 0) + margin:
                self._past_margin_since.pop(table.table, None)
                continue
            since = self._past_margin_since.setdefault(table.table, now)
            autovacuum_turn = timedelta(seconds=AUTOVACUUM_VISITS * state.naptime)
            if state.autovacuum_runs_on(table) and now - since < autovacuum_turn:
                continue  # autovacuum's to do, and it may yet
            due.append(table)
        return sorted(due, key=lambda table: table.dead, reverse=True)


async def warn_when_autovacuum_is_off(store: Store, interval: float, margin: float) -> list[str]:
    """At start: log a warning when autovacuum does not vacuum our tables (the server's setting, a
    table's storage parameter, track_counts), saying what this service does about it; the reasons."""
    try:
        problems = (await store.vacuum_state()).warnings()
    except Exception as error:  # never a reason not to start
        log.warning("could not read autovacuum's settings", error=str(error))
        return []
    if problems:
        if interval > 0:
            doing = (
                f"this service vacuums its own tables past {margin:g}x autovacuum's threshold "
                f"(MAINTENANCE_INTERVAL {interval:g}s), one at a time"
            )
        else:
            doing = (
                "MAINTENANCE_INTERVAL is 0, so nothing vacuums them: their dead tuples will grow and "
                "claims slow down; turn autovacuum on or set MAINTENANCE_INTERVAL"
            )
        log.warning(f"autovacuum does not vacuum taskservice's tables: {'; '.join(problems)}; {doing}")
    return problems
