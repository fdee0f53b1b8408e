"""Python façades and the command-line interface of simfarm."""

from simfarm.client.client import Client
from simfarm.client.errors import ApiError, ConnectionFailed, JobCancelled, JobFailed

__all__ = ["ApiError", "Client", "ConnectionFailed", "JobCancelled", "JobFailed"]
