"""A complete small session backend: SQL against an in-memory SQLite database."""
import sqlite3
from typing import Any

from session.backend import BackendConfig, ExecuteOutcome, Output, SessionBackend


class SQLiteBackend(SessionBackend):
    display_name = "SQLite (in memory)"
    language = "sql"

    def __init__(self, out: Output, config: BackendConfig) -> None:
        super().__init__(out, config)
        self.db = sqlite3.connect(":memory:")

    def execute(self, code: str, *, silent: bool = False,
                store_history: bool = True) -> ExecuteOutcome:
        try:
            rows, names = [], []
            for statement in filter(str.strip, code.split(";")):
                cursor = self.db.execute(statement)
                rows = cursor.fetchall()
                names = [d[0] for d in cursor.description or ()]
            self.db.commit()
        except sqlite3.Error as e:
            return ExecuteOutcome.failed(type(e).__name__, str(e), [f"{type(e).__name__}: {e}"])
        if not names:
            return ExecuteOutcome()
        lines = [" | ".join(names)] + [" | ".join(map(str, row)) for row in rows]
        return ExecuteOutcome(result={"text/plain": "\n".join(lines)})

    def kernel_info(self) -> dict[str, Any]:
        return {"language_info": {"name": "sql", "mimetype": "application/sql",
                                  "file_extension": ".sql"},
                "banner": f"SQLite {sqlite3.sqlite_version}, in memory"}
