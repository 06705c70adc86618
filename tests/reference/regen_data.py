"""Regenerate distrib/render/data/references.json from the installed reference packages.

    cd tests/reference && npm ci && cd ../.. && python -m tests.reference.regen_data

The file holds data, not code, taken from the npm packages pinned in package.json:

* ``twitter_gtld`` / ``twitter_cctld``: the top-level domains twitter-text 3.1.0 links
  (Apache-2.0, https://github.com/twitter/twitter-text), in the order of its patterns;
* ``twemoji``: every emoji sequence twemoji-parser 11.0.2 (MIT, used by twitter-text's
  ``parseTweet``) recognises, as hex code points joined by '-', enumerated from its
  pattern; each is checked against the package itself before it is written;
* ``bluesky_tlds``: the ``tlds`` package (MIT) list that ``@atproto/api`` checks bare
  domains and handles against.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

try:  # Python >= 3.11
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "distrib" / "render" / "data" / "references.json"


def _node(script: str, stdin: str = "") -> str:
    return subprocess.run(
        ["node", "-e", script], cwd=HERE, input=stdin, capture_output=True, text=True, check=True
    ).stdout


def _alternatives(source: str) -> list[str]:
    """The literal alternatives of twitter-text's '(?:(?:a|b|...)(?=...))' TLD pattern."""
    m = re.fullmatch(r"\(\?:\(\?:(.*)\)\(\?=\[\^0-9a-zA-Z@\+-\]\|\$\)\)", source, re.S)
    if m is None:
        raise SystemExit(f"unexpected TLD pattern shape: {source[:60]}...")
    return m.group(1).split("|")


_NOT_VS15 = "\uffff"  # marks "(?!\ufe0e)" in an enumerated sequence


def _enumerate(node: object) -> list[str]:
    """Every string a finite regular expression (parsed by the re module) matches."""
    out = [""]
    for op, av in node:  # type: ignore[attr-defined]
        if op is sre_constants.LITERAL:
            options = [chr(av)]
        elif op is sre_constants.IN:
            options = []
            for kind, value in av:
                if kind is sre_constants.LITERAL:
                    options.append(chr(value))
                elif kind is sre_constants.RANGE:
                    options.extend(chr(c) for c in range(value[0], value[1] + 1))
                else:
                    raise SystemExit(f"unsupported class item {kind}")
        elif op is sre_constants.SUBPATTERN:
            options = _enumerate(av[-1])
        elif op is sre_constants.BRANCH:
            options = [s for branch in av[1] for s in _enumerate(branch)]
        elif op is sre_constants.ASSERT_NOT and list(av[1]) == [(sre_constants.LITERAL, 0xFE0E)]:
            options = [_NOT_VS15]  # "(?!\ufe0e)": not followed by the text-style selector
        elif op is sre_constants.MAX_REPEAT and av[0] == 0 and av[1] == 1:
            options = ["", *_enumerate(av[2])]
        else:
            raise SystemExit(f"unsupported pattern element {op}")
        out = [a + b for a in out for b in options]
    return out


def _settle(units: str) -> str:
    """Keep the "(?!\ufe0e)" mark only at the end; inside, the next unit decides it."""
    head, mark, tail = units.partition(_NOT_VS15)
    while mark and tail:
        if tail[0] == "\ufe0e":
            raise SystemExit("an enumerated sequence needs U+FE0E where the pattern forbids it")
        more = _settle(tail)
        return head + more
    return units


def _units_to_text(units: str) -> str:
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def shipped_data() -> dict[str, list[str]]:
    """The data as the installed packages give it (checked against twemoji-parser)."""
    dump = json.loads(_node(HERE.joinpath("dump.js").read_text()))
    sequences = sorted(
        {_units_to_text(_settle(s)) for s in _enumerate(sre_parse.parse(dump["twemoji"]))}
    )
    # The reference must see each sequence as exactly one emoji, all of it: then the
    # longest sequence at a position is what its pattern matches there, on any text.
    check = _node(
        "const {parse} = require('twemoji-parser');"
        "const seqs = JSON.parse(require('fs').readFileSync(0, 'utf8')).map(s => s.replace(/\\uffff$/, ''));"
        "process.stdout.write(JSON.stringify(seqs.filter(s => {"
        "  const e = parse(s); return !(e.length === 1 && e[0].text === s); })));",
        json.dumps(sequences),
    )
    bad = json.loads(check)
    if bad:
        raise SystemExit(f"{len(bad)} sequences are not matched whole by twemoji-parser: {bad[:5]}")
    return {
        "twitter_gtld": _alternatives(dump["gtld"]),
        "twitter_cctld": _alternatives(dump["cctld"]),
        # A trailing "!": the sequence is an emoji only when no U+FE0E follows it.
        "twemoji": [
            "-".join(f"{ord(c):x}" for c in s.rstrip(_NOT_VS15))
            + ("!" if s.endswith(_NOT_VS15) else "")
            for s in sequences
        ],
        "bluesky_tlds": dump["tlds"],
    }


def main() -> None:
    data: dict[str, object] = {
        "_source": "generated by tests/reference/regen_data.py from npm twitter-text 3.1.0 (Apache-2.0), "
        "twemoji-parser 11.0.2 (MIT) and tlds (MIT); do not edit",
        **shipped_data(),
    }
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    counts = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    print(f"{OUT}: {counts}")


if __name__ == "__main__":
    main()
