"""The data plane: workers that claim tasks from PostgreSQL and run their plugins."""
