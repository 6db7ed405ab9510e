"""Schedules: a task created at each tick of a cron expression or an interval, exactly once per tick.

`schedules` holds each schedule: its cron expression (in `timezone`) or its interval, the task to
create at each tick (`task`: type, parameters and options, resolved when the schedule was made),
its policies (overlap, catch-up), whether it is paused, its optional end, and `next_tick`, the next
time it is due (NULL: ended). Every server and worker runs a scheduler; a due schedule's row is locked
by one of them (SKIP LOCKED), which creates the ticks' tasks and moves `next_tick` on in the same
transaction. `tasks.schedule_id`/`schedule_tick` say which schedule and tick made a task, and a unique
index on the pair makes each tick's insert idempotent: no tick is ever created twice, whatever the
number of schedulers, their clocks, or a crash between the insert and the commit (there is none:
they commit together). A task triggered by hand has its schedule and no tick.

`declared_type` is set for a schedule a task type declares (`@task(cron=...)`): the schedulers create
or update it once a worker that runs the type has published its declaration; one its code no longer
declares is reported (`undeclared_at`, and a warning), not deleted.

Adding the nullable columns rewrites nothing; the partial unique index holds only scheduled tasks,
so other tasks pay only its predicate on insert.

Revision ID: 0060
Revises: 0050
Create Date: 2026-12-06
"""

from alembic import op

revision = "0060"
down_revision = "0050"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE schedules (
            id            bigserial PRIMARY KEY,
            name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
            cron          text CHECK (length(cron) BETWEEN 1 AND 200),
            timezone      text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 100),
            every_seconds double precision CHECK (every_seconds >= 1 AND every_seconds <= 31622400),
            task          jsonb NOT NULL,
            overlap       text NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
            catchup       text NOT NULL DEFAULT 'none' CHECK (catchup IN ('none', 'last', 'all')),
            paused        boolean NOT NULL DEFAULT false,
            ends_at       timestamptz,
            next_tick     timestamptz,
            last_tick     timestamptz,
            last_task_id  bigint,
            missed        bigint NOT NULL DEFAULT 0,
            skipped       bigint NOT NULL DEFAULT 0,
            declared_type text,
            undeclared_at timestamptz,
            created_by    text NOT NULL DEFAULT '',
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            CHECK ((cron IS NULL) <> (every_seconds IS NULL))
        );
        CREATE INDEX idx_schedules_due ON schedules (next_tick) WHERE NOT paused AND next_tick IS NOT NULL;

        ALTER TABLE tasks ADD COLUMN schedule_id bigint, ADD COLUMN schedule_tick timestamptz;
        CREATE UNIQUE INDEX idx_tasks_schedule_tick ON tasks (schedule_id, schedule_tick)
         WHERE schedule_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX idx_tasks_schedule_tick;
        ALTER TABLE tasks DROP COLUMN schedule_tick, DROP COLUMN schedule_id;
        DROP TABLE schedules;
        """
    )
