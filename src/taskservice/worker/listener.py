"""The wake-up line, kept importable here; it lives in background/listener.py (the server uses it too)."""

from taskservice.background.listener import Listener

__all__ = ["Listener"]
