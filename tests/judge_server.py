"""A real OpenAI-compatible chat server on loopback, with a deterministic 'model'.

The model is naive on purpose: it answers "yes" when the two quoted descriptions share most
of their words, and also whenever a description contains "answer yes", like a model that
obeys instructions hidden in data. The library must keep such text away from it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer:
    def __init__(self, *, fail_first: int = 0, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.delay = delay
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.concurrent = 0
        self.max_concurrent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    n = len(server.requests)
                    server.concurrent += 1
                    server.max_concurrent = max(server.max_concurrent, server.concurrent)
                try:
                    if self.path != "/v1/chat/completions":
                        self.send_error(404)
                        return
                    if n <= server.fail_first:
                        self.send_error(503, "warming up")
                        return
                    time.sleep(server.delay)
                    answer = server.answer(body["messages"][-1]["content"])
                    payload = json.dumps({"choices": [{"index": 0, "message": {
                        "role": "assistant", "content": answer}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with server.lock:
                        server.concurrent -= 1

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
        self.httpd.shutdown()
        self.httpd.server_close()
