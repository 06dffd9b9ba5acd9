"""The broker copies a request or a session record about six times per execution (the cell's
view applying a status change, the open sessions' cache, the store's insert);
``dataclasses.replace`` walked the class's fields on every call, about twice the
instructions of building the copy (bench/RESULTS.md, issue 25, thirteenth pass).
``records.copied`` gives the same copy."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from broker.sessions import OpenSessions
from broker.store import OPEN, SessionRecord, Store
from broker.store.records import Progress, Request, copied
from tests.test_wire_calls import python_calls

REQUEST = Request("m1", "s1", "ann", "ws", "c1", "execute_request", "print(2)",
                  {"header": {"msg_id": "m1"}}, interact_id="i", state=3)
SESSION = SessionRecord("s1", "ann", "ws", "vm-0", OPEN, 1.0, 2.0)


def test_copied_is_dataclasses_replace() -> None:
    for record, changes in [(REQUEST, {}), (REQUEST, {"status": "done", "error": "E"}),
                            (SESSION, {}), (SESSION, {"device": None})]:
        got, want = copied(record, **changes), dataclasses.replace(record, **changes)
        assert got == want and got is not record and type(got) is type(record)
    copy = copied(REQUEST)
    copy.status = "working"
    assert REQUEST.status != "working"


def test_the_hot_copies_do_not_walk_the_fields() -> None:
    progress = Progress("m1", "done", "vm-0", 1.0, 2.0, None)
    sessions = OpenSessions(cast(Store, None))

    def copies() -> Any:
        sessions.stored(SESSION)
        try:  # kept in memory: the coroutine ends without waiting, no loop needed
            sessions.find("ann", "ws").send(None)
        except StopIteration as end:
            found = end.value
        assert found == SESSION and found is not SESSION
        applied = progress.applied(REQUEST)
        assert (applied.status, applied.finished, applied.message) == ("done", 2.0,
                                                                       REQUEST.message)

    calls = python_calls(copies)
    assert calls["dataclasses.py"] == 0, calls  # was 6: replace and its field walk
