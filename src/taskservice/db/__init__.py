"""Connecting to PostgreSQL (embedded or configured), the pool, and the schema migrations."""
