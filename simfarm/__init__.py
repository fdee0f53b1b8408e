"""simfarm: run HFSS simulations and any command across a farm of machines and clusters.

``from simfarm import Client, AsyncClient`` gives the Python façades, and
``from simfarm import ApiError, NotFound, ConnectionFailed, JobFailed, JobCancelled,
WaitTimeout, SimfarmError`` the errors they raise (all subclasses of
:class:`SimfarmError`). They are imported on first use so that workers and the gateway
do not load the client's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "JobCancelled",
    "JobFailed",
    "NotFound",
    "SimfarmError",
    "WaitTimeout",
    "__version__",
]

if TYPE_CHECKING:
    from simfarm.client import (
        ApiError,
        AsyncClient,
        Client,
        ConnectionFailed,
        JobCancelled,
        JobFailed,
        NotFound,
        WaitTimeout,
    )
    from simfarm.common.errors import SimfarmError


def __getattr__(name: str) -> Any:
    if name == "SimfarmError":
        from simfarm.common.errors import SimfarmError

        return SimfarmError
    if name in __all__ and name != "__version__":
        import simfarm.client

        return getattr(simfarm.client, name)
    raise AttributeError(f"module 'simfarm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
