"""Text from outside (subscribers, feeds, SMTP servers) made safe to print or to put in
a header: control characters, line separators and bidi controls.  Light on imports:
the CLI uses it for every line it prints.  Contains no business logic.
"""

from __future__ import annotations

import unicodedata

#: Characters that reorder the text around them (Unicode bidi embeddings, overrides,
#: isolates and marks): "gnp.exe" can show as "exe.png".
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def terminal_safe(text: str) -> str:
    """``text`` fit to print on a terminal or into a log: control characters (ESC, BEL,
    CR, tab...), line separators and bidi controls escaped as ``\\x1b`` / ``\\u202e``,
    so data a subscriber or a feed wrote cannot retitle the terminal, move the cursor,
    forge a line or reorder what is shown; everything else as it is."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}")
        else:
            out.append(ch)
    return "".join(out)
