"""The sample's service: a tiny HTTP server on 127.0.0.1 that reports its release and schema.

GET /health → 200 {"status": "ok", "version": ..., "schema": ...}; anything else → 404.
Started by the `start-service` step from the release folder, so each release runs its own copy.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    version = (Path(__file__).parent / "VERSION").read_text().strip()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/health":
                self.send_error(404)
                return
            with sqlite3.connect(args.db) as db:
                row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            body = json.dumps({"status": "ok", "version": version, "schema": row[0]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
