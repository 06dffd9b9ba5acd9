"""An ipykernel that takes ``INFO_DELAY`` seconds to answer each kernel_info_request, as a
kernel that compiles or loads on its first request does (IJulia), and counts them."""

import asyncio
import os
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp


class SlowInfo(IPythonKernel):
    info_requests = 0

    async def kernel_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        SlowInfo.info_requests += 1
        await asyncio.sleep(float(os.environ.get("INFO_DELAY", "0")))
        await super().kernel_info_request(stream, ident, parent)


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=SlowInfo)
