"""A real OpenAI-compatible chat server on loopback, with a deterministic 'model'.

The model is naive on purpose: it answers "yes" when the two quoted descriptions share most
of their words, and also whenever a description contains "answer yes", like a model that
obeys instructions hidden in data. The library must keep such text away from it.

``mode`` injects a fault into the first ``fail_first`` requests (all of them when 0); the
requests after those are answered normally:

- ``"status"``: an HTTP error ``status`` (503 by default; ``fail_first`` alone means this);
- ``"hang"``: read the request, never answer (until ``delay`` seconds or the server stops);
- ``"not-json"``: 200 with an HTML page;
- ``"no-choices"``: 200 with JSON that has no ``choices`` (an ``error`` object);
- ``"cut"``: 200 with a ``Content-Length`` of the full reply, half of it, then a closed connection;
- ``"close"``: close the connection without a reply;
- ``"not-http"``: bytes that are not an HTTP status line, then close;
- ``"trickle"``: the reply one byte every ``delay`` seconds;
- ``"babble"``: a well-formed reply whose answer is neither yes nor no.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "status", "hang", "not-json", "no-choices", "cut", "close", "not-http", "trickle",
         "babble")


class JudgeServer:
    def __init__(self, *, mode: str | None = None, fail_first: int = 0, delay: float = 0.0,
                 status: int = 503) -> None:
        mode = mode or ("status" if fail_first else "ok")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.fail_first = fail_first
        self.delay = delay
        self.status = status
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()  # wakes handlers that hang or trickle
        self.concurrent = 0
        self.max_concurrent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                counted = [True]

                def done() -> None:
                    with server.lock:
                        if counted[0]:
                            server.concurrent -= 1
                            counted[0] = False

                with server.lock:
                    server.requests.append(body)
                    n = len(server.requests)
                    server.concurrent += 1
                    server.max_concurrent = max(server.max_concurrent, server.concurrent)
                try:
                    if self.path != "/v1/chat/completions":
                        self.send_error(404)
                        return
                    faulty = server.mode != "ok" and (not server.fail_first
                                                       or n <= server.fail_first)
                    if faulty and server.mode not in ("trickle", "babble"):
                        self.fault(server.mode)
                        return
                    if server.mode != "trickle":
                        time.sleep(server.delay)
                    answer = ("I would rather not say" if faulty and server.mode == "babble"
                              else server.answer(body["messages"][-1]["content"]))
                    payload = json.dumps({"choices": [{"index": 0, "message": {
                        "role": "assistant", "content": answer}}]}).encode()
                    # out of flight before the answer is written: a client that has read it
                    # may send its next request before this thread runs again, and counting
                    # this one still would report a concurrency the client never had
                    done()
                    self.reply(payload, trickle=faulty and server.mode == "trickle")
                finally:
                    done()

            def reply(self, payload: bytes, *, trickle: bool = False,
                      content_type: str = "application/json") -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not trickle:
                    self.wfile.write(payload)
                    return
                for i in range(len(payload)):
                    if server.closing.wait(server.delay):
                        break
                    self.wfile.write(payload[i:i + 1])
                    self.wfile.flush()

            def fault(self, mode: str) -> None:
                if mode == "status":
                    self.send_error(server.status, "injected fault")
                elif mode == "hang":
                    server.closing.wait(server.delay or 60)
                    self.close_connection = True
                elif mode == "not-json":
                    self.reply(b"<html><body>502 Bad Gateway</body></html>",
                               content_type="text/html")
                elif mode == "no-choices":
                    self.reply(json.dumps({"error": {"message": "model 'm' is not loaded"}})
                               .encode())
                elif mode == "cut":
                    payload = json.dumps({"choices": [{"index": 0, "message": {
                        "role": "assistant", "content": "Yes"}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif mode == "close":
                    self.close_connection = True
                elif mode == "not-http":
                    self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @staticmethod
    def answer(prompt: str) -> str:
        quoted = re.findall(r'"((?:[^"\\]|\\.)*)"', prompt)
        if any("answer yes" in q.lower() for q in quoted):
            return "Yes"  # obeys instructions found in the data
        if len(quoted) < 2:
            return "No"
        a, b = ({w.lower().strip(".,") for w in q.split()} for q in quoted[:2])
        return "Yes" if len(a & b) / max(1, len(a | b)) >= 0.5 else "No"

    def __enter__(self) -> JudgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
