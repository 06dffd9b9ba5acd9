"""``DELETE /home/USER/WORKSHEET`` again, after one the store failed mid-way: it finishes the
deletion and says so (200, what it deleted, the sessions whose deletion it ended). Before,
it deleted the rest of the output and answered 404 "nothing stored", as if it had done
nothing."""

from __future__ import annotations

from harness import Chain, until
from test_delete_partial import REFUSE, _deleting, _store
from test_delete_runs import delete, evaluate, start, stored_messages, wait_status


def test_a_delete_again_that_finishes_an_earlier_one_answers_what_it_deleted(
        chain: Chain) -> None:
    """Tests that the second DELETE of a worksheet whose first one stopped after its first
    write (503) answers 200 with the messages it deleted and the session it finished, leaves
    no message and no session ``deleting``, and that a third DELETE then answers 404."""
    (ann,) = start(chain, "ann")
    assert evaluate(chain, ann, "ws/1", "print('to go')").status == 202
    first = wait_status(chain, ann, "ws/1", ("done", "error"))
    _store(chain, REFUSE)
    assert delete(chain, ann, "/home/ann/ws").status == 503
    # The first DELETE ended the session's worker: its last words (shutdown_reply, then
    # session_closed) are stored in the session when they come, which may be after the
    # DELETE below (the module docstring of broker/deletion.py); this one takes them too.
    until(lambda: _store(chain, "SELECT COUNT(*) FROM messages WHERE session = "
                                f"'{first['session']}' AND msg_type = 'session_closed'")
          == [(1,)], "the ended worker's session_closed stored")
    left = stored_messages(chain, "ann", "ws")
    assert left > 0 and _deleting(chain) == 1

    _store(chain, "DROP TRIGGER refuse_deletes")
    again = delete(chain, ann, "/home/ann/ws")
    assert again.status == 200, again.body
    assert again.body["deleted"]["requests"] == 0, again.body  # went with the first DELETE
    assert again.body["deleted"]["messages"] >= left, again.body
    assert again.body["finished"] == [first["session"]], again.body
    assert stored_messages(chain, "ann", "ws") == 0 and _deleting(chain) == 0
    assert delete(chain, ann, "/home/ann/ws").status == 404  # nothing left now
