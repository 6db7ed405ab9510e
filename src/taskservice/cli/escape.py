"""User data shown literally: no markup interpreted, no control sequence ever reaching the terminal.

Task names, descriptions, parameters, errors and results are the users' (or an attacker's) text. On a
terminal, characters that move the cursor, recolour, retitle the window, erase a line (ESC, CR, BEL,
backspace...) or reorder what follows (bidirectional overrides, e.g. "gnp.exe" shown as "exe.png") are
shown as escapes such as `\\x1b` or `\\u202e`. JSON and YAML output keep the exact text, with those
characters written as their escapes of the format, so a script reads back exactly what was stored.
"""

from __future__ import annotations

import re

# C0 controls but line feed and tab, DEL, C1 controls; Unicode's invisible format characters that can
# disguise text: bidirectional marks, embeddings, overrides and isolates, zero-width characters, the
# line and paragraph separators, the byte-order mark and the interlinear annotation characters.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
UNSAFE = re.compile(f"[{_UNSAFE}]")
UNSAFE_OR_BREAK = re.compile(f"[{_UNSAFE}\t\n]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def literal(text: str, *, multiline: bool = False) -> str:
    """`text` safe to print on a terminal; line breaks kept only when `multiline` (tabs never)."""
    pattern = UNSAFE if multiline else UNSAFE_OR_BREAK
    if multiline:
        text = text.replace("\t", "\\t")
    return pattern.sub(_escape, text)


def json_escapes(text: str) -> str:
    """JSON text with every unsafe character written as a \\uXXXX escape (still the same JSON value).

    json.dumps already escapes C0 controls; with ensure_ascii=False it leaves DEL, C1 and the invisible
    format characters raw. They can only occur inside strings, where \\uXXXX means the same character.
    """
    return UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
