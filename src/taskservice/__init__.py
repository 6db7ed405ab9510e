"""taskservice: task orchestration on PostgreSQL."""
