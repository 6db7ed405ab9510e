"""A user's own package: its task types (shop.tasks) and the code that enqueues them (shop.app)."""
