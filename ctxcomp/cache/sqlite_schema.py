"""The SQLite cache's schema: entries, a meta table and triggers that keep size counters.

Created in one transaction when a cache file is made (:func:`create_schema`); a cache of
another schema version is refused, not migrated.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    ns TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    accessed REAL NOT NULL,
    PRIMARY KEY (ns, kind, key)
);
CREATE INDEX IF NOT EXISTS entries_accessed ON entries (accessed);
CREATE INDEX IF NOT EXISTS entries_created ON entries (created);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', {SCHEMA_VERSION}), ('bytes', 0), ('entries', 0);
CREATE TRIGGER IF NOT EXISTS entries_ins AFTER INSERT ON entries BEGIN
    UPDATE meta SET value = value + new.size WHERE name = 'bytes';
    UPDATE meta SET value = value + 1 WHERE name = 'entries';
END;
CREATE TRIGGER IF NOT EXISTS entries_del AFTER DELETE ON entries BEGIN
    UPDATE meta SET value = value - old.size WHERE name = 'bytes';
    UPDATE meta SET value = value - 1 WHERE name = 'entries';
END;
CREATE TRIGGER IF NOT EXISTS entries_upd AFTER UPDATE OF size ON entries BEGIN
    UPDATE meta SET value = value + new.size - old.size WHERE name = 'bytes';
END;
"""


def create_schema(c: sqlite3.Connection) -> None:
    """The tables, indexes and triggers of a new, empty cache (one transaction)."""
    c.execute("BEGIN IMMEDIATE")
    for stmt in split_sql(SCHEMA):
        c.execute(stmt)
    c.execute("COMMIT")


def split_sql(script: str) -> list[str]:
    """Statements of the schema script (triggers hold inner semicolons up to END;)."""
    out, cur = [], []
    for line in script.strip().splitlines():
        cur.append(line)
        s = "\n".join(cur).strip()
        if s.endswith(";") and (
            not s.upper().startswith("CREATE TRIGGER") or s.upper().endswith("END;")
        ):
            out.append(s)
            cur = []
    return out


__all__ = ["SCHEMA", "SCHEMA_VERSION", "create_schema", "split_sql"]
