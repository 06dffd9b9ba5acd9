"""A device runs each request once: a copy that arrives after the request was answered (the
broker's reconciliation can send one, when a device's report crossed the request on the
wire) is ignored, as a copy of a request still running or queued is."""

from __future__ import annotations

from harness import of_type


def test_a_copy_of_an_answered_request_is_not_run_again(device_with_client) -> None:
    """Tests that a request sent again, re-signed as the broker does, after its reply went
    up is not run a second time: its output came once, and the next request runs."""
    client, device = device_with_client()
    first = client.execute("print('once')", "s1")
    client.replies_to(first)
    facts = {**first["metadata"]["cellbus"], "sent": "again"}  # a fresh signature
    copy = {**first, "metadata": {**first["metadata"], "cellbus": facts}}
    client.sock.send_multipart(client.session.serialize(copy))
    device.wait_for_log(rf"request {first['msg_id']} was answered here already; the copy "
                        r"is ignored")
    assert "next" in "".join(m["content"]["text"] for m in of_type(
        client.run("print('next')", "s1"), "stream"))
    runs = {tuple(m["metadata"]["cellbus"]["out"]) for m in client.about[first["msg_id"]]
            if m["msg_type"] == "execute_input"}
    assert len(runs) == 1, runs
