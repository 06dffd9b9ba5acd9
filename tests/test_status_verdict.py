"""``bin/cellbus status`` for scripts and probes: its exit status says the verdict its last
line shows (0 ready, 3 the broker answered but is not ready, 1 no answer), and ``--json``
carries that verdict too. Before, "ready: no" exited 0, and the JSON had no verdict at all."""

from __future__ import annotations

import json

from harness import Chain, chain_status


def test_the_exit_status_and_the_json_say_whether_it_is_ready(chain: Chain) -> None:
    """Tests that status exits 3 with 'ready: no (no live device)' while no device is
    registered, with "ready": false and that problem in --json, and 0 with "ready": true
    and no problems once a device is."""
    chain.start_broker()
    text = chain_status(chain)
    assert text.returncode == 3, text.stdout + text.stderr
    assert text.stdout.splitlines()[-1] == "ready: no (no live device)"
    doc = chain_status(chain, "--json")
    assert doc.returncode == 3
    answer = json.loads(doc.stdout)
    assert answer["ready"] is False and answer["problems"] == ["no live device"], answer
    chain.start_device("--prefork", "0", "--kernels", "python")
    ready = chain_status(chain, "--json")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    answer = json.loads(ready.stdout)
    assert answer["ready"] is True and answer["problems"] == [] and answer["ok"] is True
    assert chain_status(chain).stdout.splitlines()[-1] == "ready: yes"
