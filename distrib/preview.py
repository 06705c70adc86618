"""`distrib preview`: write the next edition to files, or serve it with live reload.

:func:`write_preview` writes ``digest.html``, ``digest.txt`` and ``digest.eml`` and
returns a summary (size against the budget, how many posts overflowed).

:func:`serve_preview` runs a small stdlib HTTP server on 127.0.0.1: one page shows the
subject, the preheader, the size against the budget, the HTML at desktop width and in
a 375 px phone frame, and the text part.  The page long-polls ``/version``; the
server compares the watched files' modification times on each poll and rebuilds the
edition when one changed (a template, the config), so the page reloads itself.  A
build error (a broken template) is shown on the page instead of the email, and the
next save that fixes it brings the email back.
"""

from __future__ import annotations

import html as html_lib
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from .errors import DistribError, ListenError
from .model import Markers, RenderedEdition

log = logging.getLogger("distrib")

PREVIEW_EMAIL = "reader@example.com"
PREVIEW_UNSUBSCRIBE = "https://example.com/unsubscribe?token=preview"
PREVIEW_PREFERENCES = "https://example.com/preferences?token=preview"
#: Host used for the realistic-length unsubscribe URL when measuring the size as sent.
_SIZE_SITE = "https://news.example.org/"
#: How long one /version long-poll waits for a change before answering "no change".
LONG_POLL_SECONDS = 20.0
POLL_INTERVAL = 0.3


def personalised(text: str, markers: Markers) -> str:
    """The edition as one sample recipient would see it."""
    return markers.fill(
        text, url=PREVIEW_UNSUBSCRIBE, email=PREVIEW_EMAIL, prefs=PREVIEW_PREFERENCES
    )


def summary(rendered: RenderedEdition, *, budget_kb: int) -> dict[str, Any]:
    from .render.email import size_as_sent

    size = size_as_sent(rendered.html, _SIZE_SITE, rendered.markers)
    return {
        "subject": rendered.subject,
        "preheader": rendered.preheader,
        "template": rendered.template,
        "size_kb": round(size / 1024, 1),
        "budget_kb": budget_kb,
        "over_budget": size > budget_kb * 1024,
        "full": len(rendered.full_keys),
        "overflow": len(rendered.overflow_keys),
    }


def write_preview(
    out_dir: Path, rendered: RenderedEdition, eml: bytes, *, budget_kb: int
) -> dict[str, Any]:
    """Write digest.html, digest.txt and digest.eml into ``out_dir``; return the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "html": out_dir / "digest.html",
        "text": out_dir / "digest.txt",
        "eml": out_dir / "digest.eml",
    }
    files["html"].write_text(personalised(rendered.html, rendered.markers), encoding="utf-8")
    files["text"].write_text(personalised(rendered.text, rendered.markers), encoding="utf-8")
    files["eml"].write_bytes(eml)
    return summary(rendered, budget_kb=budget_kb) | {k: str(v) for k, v in files.items()}


def _files(watch: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in watch:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        else:
            out.append(p)
    return out


def _snapshot(watch: list[Path]) -> dict[str, float]:
    snap: dict[str, float] = {}
    for f in _files(watch):
        try:
            snap[str(f)] = f.stat().st_mtime_ns
        except OSError:
            snap[str(f)] = -1  # deleted: a change too
    return snap


class PreviewState:
    """The current build (or its error) and a version number bumped by every rebuild."""

    def __init__(
        self, build: Callable[[], tuple[RenderedEdition, bytes]], watch: list[Path], budget_kb: int
    ):
        self.build = build
        # The built-in templates too: editing a default template reloads the page.
        from .paths import templates_dir

        self.watch = [Path(p) for p in watch] + [templates_dir()]
        self.budget_kb = budget_kb
        self.lock = threading.Lock()
        self.version = 0
        self.rendered: RenderedEdition | None = None
        self.eml = b""
        self.error = ""
        self.snapshot = _snapshot(self.watch)
        self.rebuild()

    def rebuild(self) -> None:
        try:
            rendered, eml = self.build()
        except DistribError as e:
            self.error = str(e)
            log.warning("preview: %s", e)
        else:
            self.rendered, self.eml, self.error = rendered, eml, ""
        self.version += 1

    def check(self) -> int:
        """Rebuild if a watched file changed; the current version."""
        with self.lock:
            snap = _snapshot(self.watch)
            if snap != self.snapshot:
                self.snapshot = snap
                self.rebuild()
            return self.version


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: PreviewState, host: str, port: int):
        self.state = state
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = cast("tuple[str, int]", self.server_address[:2])
        return f"http://{host}:{port}/"


def make_server(
    build: Callable[[], tuple[RenderedEdition, bytes]],
    watch: list[Path],
    host: str = "127.0.0.1",
    port: int = 8025,
    *,
    budget_kb: int = 90,
) -> PreviewServer:
    """The server, bound but not yet serving (port 0: any free port)."""
    try:
        return PreviewServer(PreviewState(build, watch, budget_kb), host, port)
    except OSError as e:
        raise ListenError(host, port, e) from None


def serve_preview(
    build: Callable[[], tuple[RenderedEdition, bytes]],
    watch: list[Path],
    host: str = "127.0.0.1",
    port: int = 8025,
    open_browser: bool = False,
    *,
    budget_kb: int = 90,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the preview until Ctrl-C; rebuild when a file in ``watch`` changes.

    ``on_ready`` is called with the URL once the server listens."""
    server = make_server(build, watch, host, port, budget_kb=budget_kb)
    if on_ready:
        on_ready(server.url)
    log.info("preview on %s, watching %d files", server.url, len(_files(server.state.watch)))
    if open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, (server.url,)).start()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        log.debug("preview: " + format, *args)

    def _send(
        self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib's name)
        # What GET answers, without the body (_send skips it): link checkers use HEAD.
        if urlsplit(self.path).path == "/version":
            self._send(
                200, str(self.server.state.check()).encode("ascii"), "text/plain; charset=utf-8"
            )
            return
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
        state = self.server.state
        parts = urlsplit(self.path)
        route = parts.path
        if route == "/version":
            self._version(state, parse_qs(parts.query))
            return
        state.check()
        r = state.rendered
        if route == "/":
            self._send(200, _page(state).encode("utf-8"), "text/html; charset=utf-8")
        elif route == "/email.html" and r is not None:
            self._send(
                200, personalised(r.html, r.markers).encode("utf-8"), "text/html; charset=utf-8"
            )
        elif route == "/email.txt" and r is not None:
            self._send(
                200, personalised(r.text, r.markers).encode("utf-8"), "text/plain; charset=utf-8"
            )
        elif route == "/digest.eml" and r is not None:
            self._send(
                200,
                state.eml,
                "message/rfc822",
                {"Content-Disposition": 'attachment; filename="digest.eml"'},
            )
        elif route == "/summary.json":
            body = summary(r, budget_kb=state.budget_kb) if r is not None else {}
            body |= {"error": state.error, "version": state.version}
            self._send(
                200, json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json"
            )
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _version(self, state: PreviewState, query: dict[str, list[str]]) -> None:
        try:
            since = int(query.get("since", ["-1"])[0])
        except ValueError:
            since = -1
        # A malformed or huge wait would crash the handler or hold its thread forever:
        # anything but a number from 0 to LONG_POLL_SECONDS is the default.
        try:
            wait = float(query.get("wait", [LONG_POLL_SECONDS])[0])
        except ValueError:
            wait = LONG_POLL_SECONDS
        if not 0 <= wait <= LONG_POLL_SECONDS:  # also NaN
            wait = LONG_POLL_SECONDS
        deadline = time.monotonic() + wait
        version = state.check()
        while version == since and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
            version = state.check()
        self._send(200, str(version).encode("ascii"), "text/plain; charset=utf-8")


def _page(state: PreviewState) -> str:
    esc = html_lib.escape
    r = state.rendered
    if state.error:
        status = f'<div class="error"><b>The edition does not build:</b> {esc(state.error)}</div>'
    else:
        status = ""
    if r is None:
        body = ""
        facts = ""
    else:
        s = summary(r, budget_kb=state.budget_kb)
        pct = min(100, round(100 * s["size_kb"] / max(1, s["budget_kb"])))
        over = (
            f" · <b>{s['overflow']} posts listed as title links</b> (beyond max_posts or the size budget)"
            if s["overflow"]
            else ""
        )
        facts = (
            f"<dl><dt>Subject</dt><dd>{esc(s['subject'])}</dd>"
            f"<dt>Preheader</dt><dd>{esc(s['preheader'])}</dd>"
            f'<dt>Size</dt><dd><meter min="0" max="{s["budget_kb"]}" high="{s["budget_kb"] * 0.9}" '
            f'value="{s["size_kb"]}"></meter> {s["size_kb"]} KB of {s["budget_kb"]} KB ({pct}%)'
            f" · template {esc(s['template'])} · {s['full']} posts in full{over}</dd></dl>"
        )
        body = (
            '<div class="frames"><section><h2>Desktop</h2>'
            '<iframe class="desktop" src="/email.html" title="The email at desktop width"></iframe></section>'
            '<section><h2>Phone (375 px)</h2><div class="phone">'
            '<iframe src="/email.html" title="The email at phone width"></iframe></div></section></div>'
            f"<section><h2>Text part</h2><pre>{esc(personalised(r.text, r.markers))}</pre></section>"
            '<p><a href="/digest.eml">Download digest.eml</a></p>'
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>distrib preview</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 0; padding: 16px 24px; background: #eef0f3; color: #1f2933; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; padding: 12px 16px; border-radius: 8px; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }}
.error {{ background: #fde8e8; color: #9b1c1c; padding: 12px 16px; border-radius: 8px; margin: 0 0 12px; }}
.frames {{ display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }}
.frames section:first-child {{ flex: 1 1 700px; }}
iframe.desktop {{ width: 100%; height: 1100px; border: 1px solid #cbd2d9; background: #fff; }}
.phone {{ width: 375px; height: 760px; border: 12px solid #1f2933; border-radius: 36px; overflow: hidden; background: #fff; }}
.phone iframe {{ width: 392px; height: 100%; border: 0; }}  /* the scrollbar falls outside the 375 px screen */
pre {{ background: #fff; padding: 16px; border-radius: 8px; white-space: pre-wrap; max-width: 80ch; }}
h2 {{ font-size: 14px; text-transform: uppercase; letter-spacing: .05em; color: #52606d; }}
</style></head>
<body>
<h1>distrib preview</h1>
{status}{facts}{body}
<script>
(function poll(v) {{
  fetch('/version?since=' + v).then(function (r) {{ return r.text(); }}).then(function (t) {{
    if (parseInt(t, 10) !== v) location.reload(); else poll(v);
  }}).catch(function () {{ setTimeout(function () {{ poll(v); }}, 2000); }});
}})({state.version});
</script>
</body></html>
"""
