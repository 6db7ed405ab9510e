"""What a failed attempt records of its exception: the one-line form and a bounded traceback.

Run only when an attempt fails: a success formats nothing.
"""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from types import TracebackType

from taskservice import model, plugins

# Frames of what ran the plugin (the attempt, the plugin's thread, the adapter of a seed-style
# plugin, @task's call of the function): they come first in every traceback and say nothing about
# the failure, so a traceback starts past them.
_RUNNER_FILES = frozenset(
    {
        str(Path(__file__).with_name("runtime.py")),
        str(Path(__file__).with_name("threads.py")),
        str(Path(plugins.__file__)),
        str(Path(plugins.__file__).with_name("declare.py")),
    }
)
_ASYNCIO = str(Path(asyncio.__file__).parent)


def one_line(error: BaseException) -> str:
    """`NoSuchCustomer: nobody` (the type alone when there is no message), bounded (model.ERROR_MAX)."""
    message = str(error)
    kind = type(error).__name__
    return model.cut_error(_storable(f"{kind}: {message}" if message else kind))


def _storable(text: str) -> str:
    # PostgreSQL's text cannot hold NUL: a message with one would make the outcome unstorable.
    return text.replace("\x00", "\\x00")


def _from_the_plugin(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_next is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename not in _RUNNER_FILES and not filename.startswith(_ASYNCIO):
            break
        tb = tb.tb_next
    return tb


def traceback_of(error: BaseException) -> str:
    """The exception's traceback (with its causes), from the plugin's frames on, at most
    model.TRACEBACK_MAX characters (the last ones kept)."""
    lines = traceback.format_exception(type(error), error, _from_the_plugin(error.__traceback__))
    return model.cut_traceback(_storable("".join(lines)))
