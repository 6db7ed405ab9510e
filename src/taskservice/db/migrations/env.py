"""Alembic environment: runs the migrations on the connection handed over by `taskservice.db.migrate`."""

from alembic import context
from sqlalchemy import text

# Two processes starting at once must not both apply a migration: the first holds this lock for the
# whole upgrade transaction (PostgreSQL DDL is transactional), the second then finds nothing to do.
MIGRATION_LOCK_ID = 0x7461736B  # "task"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    context.run_migrations()
