"""Headless Chromium as a measuring instrument (no pytest here).

A copy of the email gets a script that, on load, measures the page and writes the
figures as JSON into a <pre id="distrib-measure">; ``chromium --headless --dump-dom``
prints the DOM after load, and the JSON is read back.  No driver, no debugging port.

Chromium's headless window is never narrower than 500 px whatever ``--window-size``
says (measured: innerWidth 500 at 375), so the email is loaded in an ``<iframe
srcdoc>`` of the wanted width; srcdoc frames share the wrapper's origin, so the
frame's script can write its figures into the wrapper that --dump-dom prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("DISTRIB_CHROMIUM", "/usr/bin/chromium")
SKIP_REASON = f"{CHROMIUM} not found: apt-get install chromium"

# Body text is every visible text node outside the fine print (.d-fine: footer, the
# "view in browser" line) and the tag chips (.d-chip), which are meant to be small.
MEASURE_JS = r"""
<script>
window.addEventListener('load', function () {
  var de = document.documentElement, minBody = 1e9, minFine = 1e9, small = [];
  var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    var node = walker.currentNode, el = node.parentElement;
    if (!node.nodeValue.trim() || !el || el.getClientRects().length === 0) continue;
    var cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || parseFloat(cs.opacity) === 0 || parseFloat(cs.maxHeight) === 0) continue;
    var size = parseFloat(cs.fontSize);
    if (el.closest('.d-fine, .d-chip')) { minFine = Math.min(minFine, size); continue; }
    minBody = Math.min(minBody, size);
    if (size < 14) small.push(node.nodeValue.trim().slice(0, 40) + ' (' + size + 'px)');
  }
  var imgs = Array.prototype.slice.call(document.images);
  var wide = Array.prototype.slice.call(document.body.querySelectorAll('*')).filter(function (e) {
    var r = e.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 0.5;
  }).slice(0, 5).map(function (e) { return e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right); });
  var out = {
    scrollWidth: de.scrollWidth, innerWidth: window.innerWidth, minBody: minBody, minFine: minFine,
    small: small.slice(0, 8), images: imgs.length, wide: wide,
    noAlt: imgs.filter(function (i) { return !(i.getAttribute('alt') || '').trim(); }).map(function (i) { return i.src; }),
    brokenLayoutImages: imgs.filter(function (i) { return i.getBoundingClientRect().right > window.innerWidth + 0.5; }).length,
    bodyBackground: getComputedStyle(document.querySelector('.d-bg') || document.body).backgroundColor,
    dir: de.getAttribute('dir'), lang: de.getAttribute('lang')
  };
  var host = window.parent.document;
  var pre = host.createElement('pre');
  pre.id = 'distrib-measure-' + window.innerWidth;
  pre.textContent = JSON.stringify(out);
  host.body.appendChild(pre);
});
</script>
"""


def available() -> bool:
    return shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists()


def measure(
    html: str, width: int, *, workdir: Path, dark: bool = False, height: int = 1200
) -> dict[str, Any]:
    """Load ``html`` at ``width`` px and return the measurements."""
    return measure_widths(html, (width,), workdir=workdir, dark=dark, height=height)[width]


def measure_widths(
    html: str, widths: tuple[int, ...], *, workdir: Path, dark: bool = False, height: int = 1200
) -> dict[int, dict[str, Any]]:
    """Measure ``html`` at several widths with one Chromium start (one iframe per width)."""
    import html as html_lib

    page = workdir / f"measure-{'-'.join(map(str, widths))}{'-dark' if dark else ''}.html"
    inner = html_lib.escape(html.replace("</body>", MEASURE_JS + "</body>", 1), quote=True)
    frames = "".join(
        f'<iframe width="{w}" height="{height}" style="width:{w}px;height:{height}px" srcdoc="{inner}"></iframe>'
        for w in widths
    )
    page.write_text(
        "<!doctype html><html><head><style>body{margin:0}iframe{border:0;display:block}</style></head>"
        f"<body>{frames}</body></html>",
        encoding="utf-8",
    )
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--window-size={max(*widths, 500) + 20},{height}",
            "--hide-scrollbars", "--dump-dom",
        ]  # fmt: skip
        if dark:
            cmd.append("--blink-settings=preferredColorScheme=0")  # 0 = dark (blink's enum)
        cmd.append(page.as_uri())
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    found = {
        int(w): json.loads(html_lib.unescape(body))
        for w, body in re.findall(r'<pre id="distrib-measure-(\d+)">(.*?)</pre>', proc.stdout, re.S)
    }
    missing = [w for w in widths if w not in found]
    if missing:
        raise AssertionError(
            f"chromium printed no measurement at {missing} px (exit {proc.returncode}): {proc.stderr[-500:]}"
        )
    return found


def screenshot(html_path: Path, out: Path, width: int, height: int = 2000) -> None:
    """A PNG of the page, for looking at by eye (not used by assertions)."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                html_path.as_uri(),
            ],  # fmt: skip
            capture_output=True,
            timeout=60,
        )


def evaluate(html: str, expression: str, *, width: int, workdir: Path, height: int = 1200) -> Any:
    """Load ``html`` at ``width`` px and return the JSON value of the JavaScript
    ``expression``, evaluated in the email's document once it has loaded."""
    import html as html_lib

    script = (
        "<script>window.addEventListener('load', function () {"
        f"  var out = ({expression});"
        "  var pre = window.parent.document.createElement('pre');"
        "  pre.id = 'distrib-eval'; pre.textContent = JSON.stringify(out);"
        "  window.parent.document.body.appendChild(pre);"
        "});</script>"
    )
    inner = html_lib.escape(html.replace("</body>", script + "</body>", 1), quote=True)
    page = workdir / f"evaluate-{width}.html"
    page.write_text(
        "<!doctype html><html><head><style>body{margin:0}iframe{border:0;display:block}</style></head>"
        f'<body><iframe width="{width}" height="{height}" style="width:{width}px;height:{height}px" '
        f'srcdoc="{inner}"></iframe></body></html>',
        encoding="utf-8",
    )
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--window-size={max(width, 500) + 20},{height}",
            "--hide-scrollbars", "--dump-dom", page.as_uri(),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    m = re.search(r'<pre id="distrib-eval">(.*?)</pre>', proc.stdout, re.S)
    if not m:
        raise AssertionError(
            f"chromium printed no value (exit {proc.returncode}): {proc.stderr[-500:]}"
        )
    return json.loads(html_lib.unescape(m.group(1)))
