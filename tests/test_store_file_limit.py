"""A broker started under a file size limit (``ulimit -f``, RLIMIT_FSIZE: a shell, a
systemd unit's LimitFSIZE=, a container's defaults) whose store grows past it: a write past
the limit fails with EFBIG, which SQLite reports as a bare "disk I/O error", and the operator
looked for a failing disk. The broker names the limit; the rest is the full disk's path
(tests/test_disk_full.py): the devices keep the output until a broker can store it."""

from __future__ import annotations

from harness import Chain

#: The broker's file size limit: above a fresh store's file and log, below the flood's.
LIMIT = 1 << 20
LINES = 1200
FLOOD = f"for i in range({LINES}):\n    print('line', i, 'x' * 1000, flush=True)\n"


def test_a_store_past_the_brokers_file_size_limit_names_the_limit(chain: Chain) -> None:
    """Tests that a broker whose store's write-ahead log grows past its RLIMIT_FSIZE says
    so in its log, naming the file and the limit in bytes, rather than only SQLite's "disk
    I/O error"; and that the broker started again without the limit gets the cell's output
    from the device's outbox, every line once and in order."""
    broker = chain.start_broker(wrap=["prlimit", f"--fsize={LIMIT}", "--"])
    chain.start_device()
    chain.start_gateway()
    assert chain.evaluate("u/flood/1", FLOOD)[0] == 202
    line = broker.wait_for_log(r"the store cannot write.*", timeout=60).group(0)
    assert "RLIMIT_FSIZE" in line and f"({LIMIT} bytes" in line and "cellbus.db" in line, line
    assert broker.proc.poll() is None
    assert "Traceback" not in broker.log
    assert broker.stop() == 0, broker.log
    chain.start_broker()
    doc = chain.wait_done("u/flood/1", timeout=60)
    text = "".join(b["content"] for b in doc["output"].values() if b["type"] == "text")
    assert text.splitlines() == [f"line {i} {'x' * 1000}" for i in range(LINES)]
