"""Jupyter's REST routes (the ones jupyter_server's ``GatewayClient`` and
@jupyterlab/services call), with jupyter_server's models and status codes."""

from __future__ import annotations

import json
from typing import Any

from protocol.version import VERSION

from ..base import BaseHandler
from ..errors import fail
from ..guard import charge, policy_of
from . import model
from .bodies import text, unknown_kernel
from .kernelspecs import DEFAULT, kernelspecs
from .model import Sockets, owner

KERNEL_ID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"


class JupyterHandler(BaseHandler):
    """What every route here shares: the user's kernels and a JSON body."""

    signs_in = False
    #: Jupyter's clients (@jupyterlab/services) show an error's ``message``.
    error_keys = ("error", "message")

    @property
    def user(self) -> str:
        return owner(self.visitor)

    @property
    def sockets(self) -> Sockets:
        sockets: Sockets = self.settings["jupyter_sockets"]
        return sockets

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        return self.json_object()

    async def kernel_name(self, body: dict[str, Any]) -> str:
        """The kernelspec ``body["name"]`` names (the default if none); else a 400."""
        name = text(body, "name", "kernel name") or DEFAULT
        if name not in await kernelspecs(self.ask):
            raise unknown_kernel(name)
        return name

    async def kernel_model(self, kernel_id: str) -> dict[str, Any]:
        entry = await model.find(self.ask, self.user, kernel_id)
        return model.model(entry, self.sockets, self.user)

    async def start_kernel(self, body: dict[str, Any]) -> dict[str, Any]:
        name = await self.kernel_name(body)
        self.charge()
        kernel_id = await model.start(self.ask, self.user, name)
        return await self.kernel_model(kernel_id)

    async def listed(self) -> list[dict[str, Any]]:
        """The kernels a listing shows: the user's, and none to an anonymous visitor of a
        public gateway (``--allow-anonymous``), where every stranger is the one user
        ``anonymous`` and a kernel's id is all that keeps it theirs: listed, any visitor
        could read and drive every other's kernel. A loopback gateway without auth (one
        person's) lists them all."""
        policy = policy_of(self)
        if self.visitor.user is None and policy.auth == "none" and policy.public:
            return []
        return await model.entries(self.ask, self.user)

    def charge(self) -> None:
        """``--rate``: starting or restarting a kernel runs code (a fresh session), as an
        evaluate does, and shutting one down closes its session, as a restart does; 429 when
        the user's bucket is empty."""
        charge(self, self.visitor)


class ApiHandler(JupyterHandler):
    async def get(self) -> None:
        self.write_json(200, {"version": VERSION})


class KernelsHandler(JupyterHandler):
    async def get(self) -> None:
        found = await self.listed()
        self.finish(json.dumps([model.model(e, self.sockets, self.user) for e in found]))

    async def post(self) -> None:
        doc = await self.start_kernel(self.body())
        self.set_header("Location", f"/api/kernels/{doc['id']}")
        self.write_json(201, doc)


class KernelHandler(JupyterHandler):
    async def get(self, kernel_id: str) -> None:
        self.write_json(200, await self.kernel_model(kernel_id))

    async def delete(self, kernel_id: str) -> None:
        self.charge()
        await model.shut_down(self.ask, self.user, kernel_id, self.sockets)
        self.set_status(204)
        self.finish()


class InterruptHandler(JupyterHandler):
    async def post(self, kernel_id: str) -> None:
        await model.interrupt(self.ask, self.user, kernel_id)
        self.set_status(204)
        self.finish()


class RestartHandler(JupyterHandler):
    async def post(self, kernel_id: str) -> None:
        self.charge()
        await model.restart(self.ask, self.user, kernel_id)
        self.write_json(200, await self.kernel_model(kernel_id))


class KernelSpecsHandler(JupyterHandler):
    async def get(self) -> None:
        self.write_json(200, {"default": DEFAULT, "kernelspecs": {
            name: spec.model() for name, spec in (await kernelspecs(self.ask)).items()}})


class KernelSpecHandler(JupyterHandler):
    async def get(self, name: str) -> None:
        spec = (await kernelspecs(self.ask)).get(name)
        if spec is None:
            raise fail(404, f"no kernelspec {name!r}")
        self.write_json(200, spec.model())


class KernelSpecFileHandler(JupyterHandler):
    """``/kernelspecs/NAME/FILE``: logos and the like; cellbus's kernels have none."""

    async def get(self, name: str, path: str) -> None:
        raise fail(404, f"kernelspec {name!r} has no resource {path!r}")


REST_ROUTES: list[tuple[str, Any]] = [
    (r"/api/?", ApiHandler),
    (r"/api/kernels/?", KernelsHandler),
    (rf"/api/kernels/{KERNEL_ID}/?", KernelHandler),
    (rf"/api/kernels/{KERNEL_ID}/interrupt/?", InterruptHandler),
    (rf"/api/kernels/{KERNEL_ID}/restart/?", RestartHandler),
    (r"/api/kernelspecs/?", KernelSpecsHandler),
    (r"/api/kernelspecs/([^/]+)/?", KernelSpecHandler),
    (r"/kernelspecs/([^/]+)/(.+)", KernelSpecFileHandler),
]
