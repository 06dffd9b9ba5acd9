"""An ipykernel that takes ``INFO_DELAY`` seconds to answer each kernel_info_request, as a
kernel that compiles or loads on its first request does (IJulia), counts them, and notes
when the first came (monotonic), for a test to time the start from within the kernel."""

import asyncio
import os
import time
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp


class SlowInfo(IPythonKernel):
    info_requests = 0
    first_info: float | None = None

    async def kernel_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        SlowInfo.info_requests += 1
        SlowInfo.first_info = SlowInfo.first_info or time.monotonic()
        await asyncio.sleep(float(os.environ.get("INFO_DELAY", "0")))
        await super().kernel_info_request(stream, ident, parent)


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=SlowInfo)
