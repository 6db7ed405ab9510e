"""The background services the server and the workers share: the periodic-job base and the LISTEN line."""
