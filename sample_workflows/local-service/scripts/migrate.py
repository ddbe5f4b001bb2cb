"""Apply or revert the sample's schema migrations on its SQLite "app database".

migrate.py DB up VERSION      # apply migrations up to VERSION (prints previous=... for outputs)
migrate.py DB down VERSION    # revert migrations newer than VERSION
migrate.py DB current         # print the applied version
"""

from __future__ import annotations

import os
import sqlite3
import sys

MIGRATIONS = {
    "1.0.0": "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)",
    "1.1.0": "ALTER TABLE orders ADD COLUMN quantity INTEGER NOT NULL DEFAULT 1",
    "1.2.0": "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
}
REVERT = {
    "1.0.0": "DROP TABLE orders",
    "1.1.0": "ALTER TABLE orders DROP COLUMN quantity",
    "1.2.0": "DROP TABLE customers",
}


def key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def current(db: sqlite3.Connection) -> str:
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)")
    rows = [r[0] for r in db.execute("SELECT version FROM schema_migrations")]
    return max(rows, key=key) if rows else "0.0.0"


def main(path: str, action: str, target: str = "") -> int:
    with sqlite3.connect(path) as db:
        before = current(db)
        if action == "current":
            print(before)
            return 0
        if target not in MIGRATIONS and target != "0.0.0":
            print(f"unknown version {target}; known: {', '.join(MIGRATIONS)}", file=sys.stderr)
            return 2
        if action == "up":
            for version in sorted(MIGRATIONS, key=key):
                if key(before) < key(version) <= key(target):
                    db.execute(MIGRATIONS[version])
                    db.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
                    print(f"applied {version}")
            print(f"previous={before}")
            if "TEMPEH_OUTPUT" in os.environ:  # the step's outputs: what to revert to
                with open(os.environ["TEMPEH_OUTPUT"], "a") as out:
                    out.write(f"previous={before}\n")
        elif action == "down":
            for version in sorted(MIGRATIONS, key=key, reverse=True):
                if key(target) < key(version) <= key(before):
                    db.execute(REVERT[version])
                    db.execute("DELETE FROM schema_migrations WHERE version = ?", (version,))
                    print(f"reverted {version}")
        else:
            print(f"unknown action {action}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
