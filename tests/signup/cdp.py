"""Headless Chromium driven through the DevTools protocol over a pipe (no pytest here).

``--dump-dom`` (tests/render/browser.py) only loads a page; filling a form, clicking a
button and following a link need the browser driven.  Chromium's
``--remote-debugging-pipe`` speaks the DevTools protocol on file descriptors 3 (commands
in) and 4 (answers and events out), each message JSON ended by a NUL byte: the standard
library is enough, no driver, no port, no websocket library.

Typing is ``Input.insertText`` into the focused field and clicking is a real mouse press
and release at the element's centre (``Input.dispatchMouseEvent``), so the page sees what
a person's browser sends: the form is submitted by the browser, with its own encoding
and navigation.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from tests.render.browser import CHROMIUM, available

__all__ = ["Browser", "Page", "available"]

_TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execvp(sys.argv[3], sys.argv[3:])"
)


class Browser:
    """One headless Chromium, closed by ``close()`` (or ``with``)."""

    def __init__(self, timeout: float = 30.0):
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory()
        self._log = tempfile.TemporaryFile()  # Chromium's chatter, shown when it fails
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # The child's ends at 3 and 4, put there by a small Python program before it
        # becomes Chromium (moved to 10 and up first, so that neither already is 3 or 4).
        ends = []
        for fd in (to_chrome_r, from_chrome_w):
            ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD, 10))
            os.close(fd)
        to_chrome_r, from_chrome_w = ends
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--password-store=basic",
            f"--user-data-dir={self._profile.name}", "--window-size=1000,800",
            "--remote-debugging-pipe", "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(to_chrome_r), str(from_chrome_w), CHROMIUM]
            + flags,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            pass_fds=(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._ids = iter(range(1, 1 << 30))
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._events.append({"method": "closed"})
                    self._cond.notify_all()
                for waiting in list(self._answers.values()):
                    waiting.put({"error": {"message": f"chromium closed the pipe: {self.log()}"}})
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message and message["id"] in self._answers:
                    self._answers[message["id"]].put(message)
                else:
                    with self._cond:
                        self._events.append(message)
                        self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Run one protocol command and return its result (AssertionError on an error)."""
        ident = next(self._ids)
        box: queue.Queue[dict[str, Any]] = queue.Queue()
        self._answers[ident] = box
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        try:
            answer = box.get(timeout=self.timeout)
        except queue.Empty:
            raise AssertionError(f"chromium did not answer {method}") from None
        finally:
            del self._answers[ident]
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def log(self) -> str:
        """The end of what Chromium printed."""
        self._log.seek(0)
        return self._log.read()[-2000:].decode("utf-8", "replace")

    def mark(self) -> int:
        """A position in the event stream, for ``wait_event(after=...)``."""
        with self._cond:
            return len(self._events)

    def wait_event(self, method: str, session: str = "", after: int = 0) -> dict[str, Any]:
        """The first event ``method`` (of ``session``) at or after position ``after``."""
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                for event in self._events[after:]:
                    if event.get("method") == method and event.get("sessionId", "") == session:
                        return event
                    if event.get("method") == "closed":
                        raise AssertionError(f"chromium exited waiting for {method}: {self.log()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"chromium sent no {method}")
                self._cond.wait(left)

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except AssertionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab: navigate, evaluate, type, click; each navigation waits for its load."""

    def __init__(self, browser: Browser, session: str):
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.browser.send(method, params, self.session)

    def goto(self, url: str) -> None:
        mark = self.browser.mark()
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise AssertionError(f"chromium could not open {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session, mark)

    def eval(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element (as a click or Tab would) and type ``text`` into it."""
        focused = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.focus(); return document.activeElement === e; })()"
        )
        assert focused, f"cannot focus {selector}"
        self.send("Input.insertText", {"text": text})

    def click(self, selector: str, navigates: bool = True) -> None:
        """A left click at the centre of the element; with ``navigates``, wait for the
        page it leads to."""
        box = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width}; })()"
        )
        assert box and box["w"] > 0, f"nothing visible to click at {selector}"
        mark = self.browser.mark()
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )
        if navigates:
            self.browser.wait_event("Page.loadEventFired", self.session, mark)

    def text(self) -> str:
        return str(self.eval("document.body.innerText"))

    def accessibility_tree(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = self.send("Accessibility.getFullAXTree")["nodes"]
        return nodes
