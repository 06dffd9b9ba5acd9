"""Operators' views of a running chain: Prometheus metrics of every node, /health and
/ready, over real processes and real HTTP."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request

from harness import Chain, free_port


def scrape(url: str) -> dict[str, float]:
    """``{'name{labels}': value}`` of a Prometheus text page."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_every_node_reports_metrics_and_the_gateway_says_when_it_is_ready(chain: Chain) -> None:
    """Tests that a cell's run shows in each node's metrics (stored output, first-output
    latency, sessions, HTTP requests by route and status), that no user name appears in
    any label, and that /ready turns 503, saying why, once no device is left."""
    broker_port, device_port = free_port(), free_port()
    chain.start_broker("--metrics-port", str(broker_port))
    device = chain.start_device("--metrics-port", str(device_port))
    chain.start_gateway()
    assert chain.http("GET", "/health") == (200, {"ok": True})
    status, ready = chain.http("GET", "/ready")
    assert status == 200 and ready["ready"] and ready["devices"] == 1, ready
    assert ready["store_writable"] is True
    assert chain.evaluate("alice/ws/1", "print('metrics')")[0] == 202
    assert chain.wait_done("alice/ws/1")["status"] == "done"
    assert chain.evaluate("alice/ws/1", None)[0] == 202  # again: the session is warm
    assert chain.wait_done("alice/ws/1")["status"] == "done"

    broker = scrape(f"http://127.0.0.1:{broker_port}/metrics")
    assert broker["cellbus_output_messages_stored_total"] >= 8  # 2 runs of 4+ messages
    assert broker["cellbus_output_bytes_stored_total"] > 0
    assert broker["cellbus_first_output_seconds_count"] == 2
    assert broker["cellbus_store_commit_seconds_count"] >= 2
    assert broker["cellbus_devices"] == 1 and broker["cellbus_store_writable"] == 1
    assert broker['cellbus_sessions_open{device="device0"}'] == 1
    gateway = scrape(chain.url("/metrics"))
    assert gateway['cellbus_http_requests_total{route="evaluate",status="202"}'] == 2
    assert gateway["cellbus_websocket_connections"] == 0
    deadline = time.monotonic() + 10  # the outbox empties once the broker's acks are in
    while (dev := scrape(f"http://127.0.0.1:{device_port}/metrics"))[
            "cellbus_device_outbox_records"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dev["cellbus_device_outbox_records"] == 0 and dev["cellbus_device_sessions"] == 1
    assert dev["cellbus_device_places"] == 16
    assert dev['cellbus_device_kernel_sessions{kernel="python"}'] == 1
    assert dev['cellbus_device_kernel_workers_preforked{kernel="python"}'] >= 0
    assert any(k.startswith("cellbus_device_sandbox_protection{") for k in dev)
    for samples in (broker, gateway, dev):
        assert not any("alice" in key for key in samples)

    device.stop()
    deadline = time.monotonic() + 20
    while (got := chain.http("GET", "/ready"))[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    status, ready = got
    assert status == 503 and not ready["ready"], ready
    assert any(re.match(r"devices: no device", p) for p in ready["problems"]), ready


def wait_for(check, timeout: float = 20):  # type: ignore[no-untyped-def]
    """``check()``'s first true value within ``timeout`` seconds (polled), else its last."""
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_cells_running_queued_and_rate_refusals_move_and_ready_follows_the_broker(
        chain: Chain) -> None:
    """Tests that a device's running and queued cells show while they run and go after,
    that a gateway counts the requests its --rate refused, and that /ready turns 503
    naming the broker while the broker is stopped, and 200 again once it is back."""
    device_port = free_port()
    chain.start_broker()
    chain.start_device("--metrics-port", str(device_port))
    chain.start_gateway("--rate", "3/min")
    device = f"http://127.0.0.1:{device_port}/metrics"
    assert chain.evaluate("ann/q/1", "import time\ntime.sleep(3)")[0] == 202
    assert chain.evaluate("ann/q/2", "print(2)")[0] == 202
    busy = wait_for(lambda: (s := scrape(device))["cellbus_device_cells_queued"] == 1 and s)
    assert busy and busy["cellbus_device_cells_running"] == 1, busy
    assert chain.wait_done("ann/q/2")["status"] == "done"
    idle = scrape(device)
    assert idle["cellbus_device_cells_running"] == 0 and idle["cellbus_device_cells_queued"] == 0

    assert chain.evaluate("ann/q/3", "1")[0] == 202
    assert chain.evaluate("ann/q/4", "1")[0] == 429  # the fourth in a minute
    gateway = scrape(chain.url("/metrics"))
    assert gateway['cellbus_refusals_total{reason="rate"}'] == 1, gateway

    assert chain.http("GET", "/ready")[0] == 200
    assert chain.broker is not None
    chain.broker.stop()
    status, ready = chain.http("GET", "/ready")
    assert status == 503 and any(p.startswith("broker:") for p in ready["problems"]), ready
    chain.start_broker()
    back = wait_for(lambda: chain.http("GET", "/ready")[0] == 200, timeout=30)
    assert back, chain.http("GET", "/ready")


def test_heartbeats_a_device_misses_are_counted(chain: Chain) -> None:
    """Tests that the broker counts none missed while a device beats, and counts the
    intervals a stopped (SIGSTOP) device stays silent through."""
    broker_port = free_port()
    chain.start_broker("--metrics-port", str(broker_port))
    device = chain.start_device()
    url = f"http://127.0.0.1:{broker_port}/metrics"
    missed = 'cellbus_device_heartbeats_missed_total{device="device0"}'
    assert scrape(url).get(missed, 0) == 0
    os.killpg(device.proc.pid, signal.SIGSTOP)
    try:
        seen = wait_for(lambda: scrape(url).get(missed, 0) >= 1, timeout=10)
    finally:
        os.killpg(device.proc.pid, signal.SIGCONT)
    assert seen, scrape(url)
