"""Jupyter kernels whose worker ended are not listed: a kernel of an earlier run of the chain
(``bin/cellbus up`` stopped, then started again on the same store), or one whose worker sat
idle past ``--idle-timeout``. Before, ``/api/kernels`` listed them as ``idle`` with their old
``last_activity``, and a client that used one ran in a fresh worker without its variables and
without a word; jupyter_server removes a kernel that died or was culled from its list (404),
and @jupyterlab/services tells its connections to a kernel no longer listed that it is shut
down. The worksheet's runs stay in the store (``/home/anonymous/ID``)."""

from __future__ import annotations

from harness import Chain
from test_jupyter_api import start_kernel


def _listed(chain: Chain) -> list[str]:
    status, kernels = chain.http("GET", "/api/kernels")
    assert status == 200, kernels
    return [k["id"] for k in kernels]


def test_a_kernel_of_an_earlier_run_is_not_listed(chain: Chain) -> None:
    """Tests that a kernel started before the whole chain stopped (SIGTERM: its worker ended)
    is neither in GET /api/kernels nor at GET /api/kernels/ID (404) once the chain runs again
    on the same store, while a kernel started in the new run is; and that a kernel whose
    worker the device closed for --idle-timeout goes from the list too."""
    chain.start_broker()
    chain.start_device(name="device0")
    chain.start_gateway()
    old = start_kernel(chain)
    assert _listed(chain) == [old]
    for node in (chain.gateway, *chain.devices, chain.broker):
        assert node is not None
        node.stop()
    chain.devices.clear()

    chain.start_broker()
    device = chain.start_device("--idle-timeout", "2", name="device0")
    chain.start_gateway()
    assert old not in _listed(chain)
    status, body = chain.http("GET", f"/api/kernels/{old}")
    assert status == 404 and old in body["message"], body
    new = start_kernel(chain)
    assert _listed(chain) == [new]
    session = chain.http("GET", "/home/anonymous/" + new + "/kernel-start/update")[1]["session"]
    device.wait_for_log(rf"session {session} closed \(idle timeout\)", timeout=30)
    assert chain.broker is not None
    chain.broker.wait_for_log(rf"closed session {session}")
    assert chain.http("GET", f"/api/kernels/{new}")[0] == 404
    assert _listed(chain) == []
