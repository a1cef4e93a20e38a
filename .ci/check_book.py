#!/usr/bin/env python3
"""Check the built book (_build/html) the way a reader would meet it.

Run by .ci/run after `make book`; needs only the Python standard library,
PyYAML (installed with jupyter-book) and a Chromium binary for the last step.

1. Every page in book/_toc.yml was built, and none shows a traceback, a cell
   error, an error message on stderr (e.g. ``ValueError``) or a docutils
   system message.
2. Every chapter (a page whose source is a notebook) shows at least one
   figure, and offers its executed notebook as ``_sources/<page>.ipynb`` in
   the download menu.
3. Math is served offline: no page loads MathJax from a CDN, and the local
   ``_static/mathjax/tex-chtml.js`` exists.
4. Each page is opened in headless Chromium over a local HTTP server: no
   console errors, uncaught exceptions or failed loads (failed loads of
   external URLs excepted: the machine may be offline), no broken images,
   the math typeset without MathJax errors. A full-page screenshot of each
   page goes to _build/screenshots/<page>.png.

Chromium is driven through the DevTools protocol over a WebSocket, with a
small client below, so that no Python package beyond the standard library
is needed.

Usage: python .ci/check_book.py [--html _build/html] [--no-browser]
Exit status 0 when every check passes, 1 otherwise (the failures are listed).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
ERROR_WORDS = re.compile(r"Traceback|\w*Error\b|\bERROR\b")
CDN_MATHJAX = re.compile(r"<script[^>]+src=\"https?://[^\"]*mathjax", re.I)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--window-size=1280,900"]
WIDTH = 1280
MAX_SCREENSHOT_HEIGHT = 16000  # Chromium's largest texture is 16384 px


# --------------------------------------------------------------------------- the toc

def toc_pages(toc_path: Path = BOOK / "_toc.yml") -> list[str]:
    """Document names in book/_toc.yml, in reading order (root first)."""
    toc = yaml.safe_load(toc_path.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(str(Path(entry["file"]).with_suffix("")))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return pages


def is_notebook(page: str) -> bool:
    """A MyST notebook: its source has a kernelspec in the front matter."""
    for suffix in (".md", ".ipynb"):
        source = BOOK / f"{page}{suffix}"
        if source.is_file():
            text = source.read_text(encoding="utf8")
            return suffix == ".ipynb" or (text.startswith("---") and "kernelspec:" in text.split("\n---", 2)[0])
    return False


# --------------------------------------------------------------------------- static HTML checks

class _PageParser(HTMLParser):
    """Collects images, error-like outputs and the download links of one page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, set[str]]] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.problems: list[str] = []
        self._capture: list[list] = []  # [classes, depth, text parts]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in {"img", "br", "hr", "meta", "link", "input", "source", "wbr", "col", "area", "base"}:
            return
        self.stack.append((tag, classes))
        if {"traceback"} & classes or {"system-message", "problematic"} & classes or (
                "output" in classes and ("stderr" in classes or "error" in classes)):
            self._capture.append([classes, len(self.stack), []])

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, _ = self.stack.pop()
            depth = len(self.stack) + 1
            if self._capture and self._capture[-1][1] == depth:
                classes, _, parts = self._capture.pop()
                self._judge(classes, " ".join(parts))
            if open_tag == tag:
                break

    def handle_data(self, data):
        for capture in self._capture:
            capture[2].append(data)

    def _judge(self, classes: set[str], text: str) -> None:
        text = " ".join(text.split())
        if "traceback" in classes or "error" in classes:
            self.problems.append(f"cell error output: {text[:300]}")
        elif {"system-message", "problematic"} & classes:
            self.problems.append(f"docutils problem: {text[:300]}")
        elif ERROR_WORDS.search(text):
            self.problems.append(f"error on stderr: {text[:300]}")


def check_static(html_dir: Path, pages: list[str]) -> list[str]:
    failures = []
    mathjax = html_dir / "_static" / "mathjax" / "tex-chtml.js"
    if not mathjax.is_file():
        failures.append(f"offline MathJax missing: {mathjax} (make mathjax)")
    for page in pages:
        path = html_dir / f"{page}.html"
        if not path.is_file():
            failures.append(f"{page}: not built ({path} missing)")
            continue
        text = path.read_text(encoding="utf8")
        parser = _PageParser()
        parser.feed(text)
        failures += [f"{page}: {p}" for p in parser.problems]
        if CDN_MATHJAX.search(text):
            failures.append(f"{page}: loads MathJax from a CDN instead of _static/mathjax")
        if is_notebook(page):
            figures = [src for src in parser.images if "_images/" in src]
            if not figures:
                failures.append(f"{page}: a chapter without any figure (no <img> from _images/)")
            notebook = html_dir / "_sources" / f"{page}.ipynb"
            if not notebook.is_file():
                failures.append(f"{page}: no notebook download ({notebook} missing)")
            elif not any(link.endswith(f"_sources/{page}.ipynb") for link in parser.links):
                failures.append(f"{page}: the download menu does not link _sources/{page}.ipynb")
            else:
                try:
                    json.loads(notebook.read_text(encoding="utf8"))["cells"]
                except (ValueError, KeyError) as err:
                    failures.append(f"{page}: {notebook.name} is not a notebook ({err})")
        print(f"  {page}: {len(parser.images)} images, {len(parser.problems)} problems")
    return failures


# --------------------------------------------------------------------------- a tiny DevTools client

class DevTools:
    """A minimal Chrome DevTools protocol client over one WebSocket (RFC 6455, text frames)."""

    def __init__(self, ws_url: str, timeout: float = 30.0):
        url = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        head, self._buffer = response.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"DevTools refused the WebSocket: {head[:200]!r}")
        self._next_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send_frame(self, payload: bytes, opcode: int = 1) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _receive(self) -> dict:
        message = b""
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 9:  # ping
                self._send_frame(payload, opcode=10)
                continue
            if opcode == 8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0, 1, 2):
                message += payload
                if first & 0x80:
                    return json.loads(message)

    def call(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self._next_id += 1
        ident = self._next_id
        self._send_frame(json.dumps({"id": ident, "method": method, "params": params or {}}).encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._receive()
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"{method} did not answer within {timeout} s")

    def wait_for(self, event: str, timeout: float) -> bool:
        if any(e["method"] == event for e in self.events):
            return True
        deadline = time.monotonic() + timeout
        self.sock.settimeout(1.0)
        try:
            while time.monotonic() < deadline:
                try:
                    message = self._receive()
                except socket.timeout:
                    continue
                if "method" in message:
                    self.events.append(message)
                    if message["method"] == event:
                        return True
            return False
        finally:
            self.sock.settimeout(30.0)


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve a folder on 127.0.0.1 (a free port) for the length of the block."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium(binary: str):
    """Start headless Chromium with a fresh profile; yield the DevTools HTTP endpoint."""
    profile = tempfile.mkdtemp(prefix="ust-chromium-")
    log = open(Path(profile).parent / f"{Path(profile).name}.log", "wb")
    process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                "about:blank"], stdout=log, stderr=subprocess.STDOUT)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(f"Chromium did not start (exit {process.poll()}); see {log.name}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def _is_external(url: str) -> bool:
    """A URL outside the local server, or the favicon the browser asks for on its own."""
    parsed = urllib.parse.urlparse(url or "")
    if parsed.path == "/favicon.ico":
        return True
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in ("127.0.0.1", "localhost")


def _page_errors(events: list[dict]) -> list[str]:
    """Console errors, exceptions and failed loads, failed loads of external URLs excepted."""
    urls = {e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in events if e["method"] == "Network.requestWillBeSent"}
    errors = []
    for e in events:
        method, p = e["method"], e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = p["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            errors.append(f"uncaught exception: {text.splitlines()[0] if text else details}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            errors.append(f"console.{p['type']}: {args[:300]}")
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            entry = p["entry"]
            if entry.get("source") == "network" and _is_external(entry.get("url", "")):
                continue
            errors.append(f"console ({entry.get('source')}): {entry.get('text', '')[:300]} {entry.get('url', '')}")
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            url = urls.get(p["requestId"], "?")
            if not _is_external(url):
                errors.append(f"failed to load {url}: {p.get('errorText')}")
    return sorted(set(errors))


_PAGE_STATE = """
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await new Promise(r => setTimeout(r, 300));
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
  return JSON.stringify({
    height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
    math: document.querySelectorAll('.math, div.math, span.math').length,
    typeset: document.querySelectorAll('mjx-container').length,
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent).slice(0, 5),
    mathjax: !!window.MathJax,
    broken: broken,
  });
})()
"""


def check_in_browser(html_dir: Path, pages: list[str], shots: Path, binary: str) -> list[str]:
    failures = []
    shots.mkdir(parents=True, exist_ok=True)
    with serve(html_dir) as base, chromium(binary) as devtools:
        for page in pages:
            request = urllib.request.Request(f"{devtools}/json/new?about:blank", method="PUT")
            with urllib.request.urlopen(request, timeout=30) as response:
                target = json.loads(response.read())
            client = DevTools(target["webSocketDebuggerUrl"])
            try:
                for domain in ("Page", "Runtime", "Log", "Network"):
                    client.call(f"{domain}.enable")
                client.call("Emulation.setDeviceMetricsOverride",
                            {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False})
                client.call("Page.navigate", {"url": f"{base}/{page}.html"})
                if not client.wait_for("Page.loadEventFired", timeout=60):
                    failures.append(f"{page}: the page did not finish loading within 60 s")
                state = json.loads(client.call("Runtime.evaluate", {"expression": _PAGE_STATE, "awaitPromise": True,
                                                                    "returnByValue": True}, timeout=90)
                                   ["result"]["value"])
                # a viewport as tall as the page: captureBeyondViewport shifts the theme's layout sideways
                height = min(int(state["height"]), MAX_SCREENSHOT_HEIGHT)
                client.call("Emulation.setDeviceMetricsOverride",
                            {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
                time.sleep(0.5)
                shot = client.call("Page.captureScreenshot", {"format": "png"}, timeout=120)
                target = shots / f"{page}.png"  # pages in subfolders (assignments/...) get their folder
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(shot["data"]))
                errors = _page_errors(client.events)
                errors += [f"broken image {src}" for src in state["broken"]]
                errors += [f"MathJax error: {text}" for text in state["mathErrors"]]
                if state["math"] and not state["typeset"]:
                    errors.append(f"{state['math']} math elements but nothing typeset (MathJax loaded: "
                                  f"{state['mathjax']})")
                failures += [f"{page}: {e}" for e in errors]
                print(f"  {page}: {height} px high, {state['typeset']} formulas typeset, {len(errors)} errors "
                      f"-> {shots / (page + '.png')}")
            finally:
                client.close()
                with contextlib.suppress(Exception):
                    urllib.request.urlopen(f"{devtools}/json/close/{target['id']}", timeout=10).close()
    return failures


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html", help="the built book")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium check")
    args = parser.parse_args(argv)

    pages = toc_pages()
    print(f"Checking {len(pages)} pages of {args.html}: {', '.join(pages)}")
    failures = check_static(args.html, pages)
    if not args.no_browser:
        binary = _find_chromium()
        if binary is None:
            failures.append("no Chromium found (apt-get install chromium), so the pages were not rendered")
        else:
            print(f"Rendering in {binary} (headless):")
            failures += check_in_browser(args.html, pages, args.screenshots, binary)
    if failures:
        print(f"\nBook check FAILED, {len(failures)} problem(s):")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("Book check passed: no errors in outputs, a figure in every chapter, notebooks downloadable, "
          "math offline" + ("" if args.no_browser else ", pages render without console errors."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
