"""The control plane: the Connect API, health, metrics, and the ASGI app that serves them."""
