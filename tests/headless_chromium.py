"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`), no extra packages.

The Temporal UI is a single-page app that long-polls the history of a running workflow, so `--screenshot` with a
virtual-time budget never settles on a detail page and `--dump-dom` returns the empty shell. Here a page is loaded,
its text polled until it shows what is expected (or the wait gives up), then captured as PNG with its text.
Chromium reads commands on fd 3 and writes answers on fd 4, each a JSON object ended by a NUL byte."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

# The page's text with that of its same-origin frames (the Temporal UI renders summaries and details in iframes).
PAGE_TEXT = """[document.body ? document.body.innerText : ''].concat(Array.from(document.querySelectorAll('iframe'))
  .map(f => { try { return f.contentDocument.body.innerText; } catch (e) { return ''; } })).join('\\n')"""
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str | None:
    found = os.environ.get("CHROMIUM")
    if found:
        return found
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Page:
    text: str  # document.body.innerText when captured
    html: str  # the rendered DOM
    png: bytes
    missing: list[str]  # expected strings still absent when the wait gave up


class Chromium:
    def __init__(self, binary: str, width: int = 1440, height: int = 900, timezone: str | None = None,
                 scale: float = 1.0) -> None:
        """`timezone`: an IANA zone the pages see as local time (e.g. "Asia/Shanghai"); `scale`: of the pictures
        (the page is laid out at width x height, the PNG is scaled by this)."""
        self.width, self.height, self.timezone, self.scale = width, height, timezone, scale
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # The child's ends moved to fds >= 10 so that placing them on 3 and 4 cannot overwrite one with the other.
        for fd in (to_chrome_r, from_chrome_w):
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
            if fd == to_chrome_r:
                to_chrome_r = moved
            else:
                from_chrome_w = moved

        self._profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"chromium-profile-{os.getpid()}-{id(self)}"
        args = [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--mute-audio", f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}", "about:blank"]
        # bash puts the pipe ends on fds 3 and 4, where Chromium expects them, then becomes Chromium.
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', "chromium", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("CHROMIUM_LOG") else subprocess.DEVNULL,
            pass_fds=(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0

    # ------------------------------------------------------------------ protocol
    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium exited")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    # ------------------------------------------------------------------ pages
    def capture(self, url: str, expect: Iterable[str], wait: float = 30.0, settle: float = 1.5,
                script: str | None = None) -> Page:
        """Open `url` in a fresh tab, wait until its text shows every `expect` string, run `script` (e.g. expand a
        row, scroll), then capture it."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session)
            if self.timezone:
                self.call("Emulation.setTimezoneOverride", {"timezoneId": self.timezone}, session)
            self.call("Page.navigate", {"url": url}, session)
            wanted = list(expect)
            deadline = time.monotonic() + wait
            missing = wanted
            while True:
                text = self._evaluate(PAGE_TEXT, session)
                missing = [w for w in wanted if w not in text]
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if script:
                self._evaluate(script, session)
            time.sleep(settle)  # let the last rows and fonts paint
            text = self._evaluate(PAGE_TEXT, session)
            html = self._evaluate("document.documentElement.outerHTML", session)
            clip = {"x": 0, "y": 0, "width": self.width, "height": self.height, "scale": self.scale}
            shot = self.call("Page.captureScreenshot", {"format": "png", "clip": clip}, session)["data"]
            return Page(text=text, html=html, png=base64.b64decode(shot),
                        missing=[w for w in wanted if w not in text])
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def local_storage(self, origin: str, items: dict[str, str]) -> None:
        """Put `items` in the localStorage of `origin` (scheme://host:port; e.g. a web app's saved preferences)
        for the pages opened next."""
        target = self.call("Target.createTarget", {"url": origin})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            deadline = time.monotonic() + 30
            while self._evaluate("location.origin + ' ' + document.readyState", session) != f"{origin} complete":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{origin} did not load")
                time.sleep(0.2)
            for key, value in items.items():
                self._evaluate(f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)}), ''", session)
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def _evaluate(self, expression: str, session: str) -> str:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return str(result.get("result", {}).get("value", ""))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
