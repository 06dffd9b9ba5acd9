"""An ipykernel that never says it began a cell (it sends no ``execute_input``), as a
kernel that does not implement that part of the protocol does."""

from typing import Any

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp


class Quiet(IPythonKernel):
    def _publish_execute_input(self, *args: Any, **kwargs: Any) -> None:
        pass


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=Quiet)
