"""Python façades (:class:`Client`, :class:`AsyncClient`) and the command-line interface."""

from simfarm.client.async_client import AsyncClient
from simfarm.client.client import Client
from simfarm.client.errors import (
    ApiError,
    ConnectionFailed,
    JobCancelled,
    JobFailed,
    NotFound,
    WaitTimeout,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "JobCancelled",
    "JobFailed",
    "NotFound",
    "WaitTimeout",
]
