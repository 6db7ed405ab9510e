"""The rules every interface applies alike (a task's fields and limits, which failures are transient)."""
