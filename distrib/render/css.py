"""Values that go into CSS: validated when the config loads, escaped for CSS when written.

Theme values end up in two places: ``style=""`` attributes (HTML-escaped there, which the
HTML parser undoes) and ``<style>`` blocks, where HTML escaping is wrong: a ``&#39;`` in a
style block is not a quote but four characters, and clients drop the whole declaration
as invalid CSS.  Templates therefore write theme values into style blocks through the
``css`` filter (:func:`css_value`), which escapes for CSS (CSS Syntax 3, section 2.4)
and marks the result safe for HTML.
"""

from __future__ import annotations

import re

from markupsafe import Markup

#: CSS Color 4 named colours (section 6.1), plus ``transparent`` and ``currentcolor``.
NAMED_COLORS = frozenset(
    """aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue
    blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk
    crimson cyan darkblue darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki
    darkmagenta darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen
    darkslateblue darkslategray darkslategrey darkturquoise darkviolet deeppink deepskyblue
    dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro ghostwhite
    gold goldenrod gray green greenyellow grey honeydew hotpink indianred indigo ivory khaki
    lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan
    lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen
    lightskyblue lightslategray lightslategrey lightsteelblue lightyellow lime limegreen linen
    magenta maroon mediumaquamarine mediumblue mediumorchid mediumpurple mediumseagreen
    mediumslateblue mediumspringgreen mediumturquoise mediumvioletred midnightblue mintcream
    mistyrose moccasin navajowhite navy oldlace olive olivedrab orange orangered orchid
    palegoldenrod palegreen paleturquoise palevioletred papayawhip peachpuff peru pink plum
    powderblue purple rebeccapurple red rosybrown royalblue saddlebrown salmon sandybrown
    seagreen seashell sienna silver skyblue slateblue slategray slategrey snow springgreen
    steelblue tan teal thistle tomato turquoise violet wheat white whitesmoke yellow
    yellowgreen transparent currentcolor""".split()
)
_HEX = re.compile(r"#(?:[0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})")
#: Family names that are keywords or identifiers written unquoted by convention.
GENERIC_FAMILIES = frozenset(
    "serif sans-serif monospace cursive fantasy system-ui ui-serif ui-sans-serif ui-monospace "
    "ui-rounded emoji math fangsong -apple-system blinkmacsystemfont".split()
)
# A family name: letters of any script, digits, spaces, and . _ - (what font names use).
_FAMILY = re.compile(r"[^\W_](?:[\w .\-]*[\w.])?|-apple-system")


def color(value: str) -> str:
    """``value`` as a CSS colour (hex or a named colour), lower-cased; ValueError if not."""
    v = value.strip().lower()
    if _HEX.fullmatch(v) or v in NAMED_COLORS:
        return v
    raise ValueError(value)


def font_stack(value: str) -> str:
    """A font-family list, each family as a keyword or a single-quoted name; ValueError if
    a family is not a plain name.  Single quotes keep it valid in a ``style=""`` attribute
    (double-quoted) and in a style block alike."""
    families = []
    for raw in value.split(","):
        name = raw.strip()
        if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
            name = name[1:-1].strip()
        if not name or not _FAMILY.fullmatch(name):
            raise ValueError(raw)
        if name.lower() in GENERIC_FAMILIES or re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name):
            families.append(name)
        else:
            families.append(f"'{name}'")
    return ", ".join(families)


# Characters that may stand in a CSS value as they are; everything else is escaped.
_SAFE = re.compile(r"[\w #%.,\-]")


def css_value(value: object) -> Markup:
    """``value`` escaped for a CSS declaration value inside a ``<style>`` block, and marked
    safe for HTML.  Validated theme values pass unchanged; anything else (``;``, ``}``,
    ``<``, a backslash, a control character) becomes a CSS escape (``\\3c ``), so no value
    can end its declaration or the style element."""
    text = str(value)
    quotes_pair = text.count("'") % 2 == 0  # a lone quote would open a string
    out = []
    for ch in text:
        if (_SAFE.fullmatch(ch) or (ch == "'" and quotes_pair)) and ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\{ord(ch):x} ")
    return Markup("".join(out))
