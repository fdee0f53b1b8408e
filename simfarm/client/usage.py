"""Usage reports (``GET /api/v1/usage``) for both façades: the I/O-free operation,
:class:`UsageMixin` for :class:`~simfarm.client.client.Client` and
:class:`AsyncUsageMixin` for :class:`~simfarm.client.async_client.AsyncClient`."""

from __future__ import annotations

from typing import Any, TypeVar

from simfarm.client import api
from simfarm.common.usage import Bucket, Dimension, UsageReport

T = TypeVar("T")


def usage(by: Dimension = "account", since: str | float = "30d",
          until: str | float | None = None, bucket: Bucket = "total"
          ) -> api.Operation[UsageReport]:
    """GET a usage report (see :meth:`UsageMixin.usage`)."""
    params: dict[str, Any] = {"by": by, "since": str(since), "bucket": bucket}
    if until is not None:
        params["until"] = str(until)
    return api.Operation(api.Request("GET", "/api/v1/usage", params=params),
                         UsageReport.model_validate)


class UsageMixin:
    """The sync method; the class needs ``_call``."""

    def _call(self, op: api.Operation[T]) -> T:
        raise NotImplementedError

    def usage(self, by: Dimension = "account", since: str | float = "30d",
              until: str | float | None = None, bucket: Bucket = "total") -> UsageReport:
        """Usage (attempts, core-seconds, run and wait time, licence-seconds) per
        ``user``, ``account`` or ``node`` over whole UTC days from ``since`` (``30d``,
        ``12h``, epoch seconds, an ISO date) to ``until`` (default now), per ``day``,
        ``month`` or in ``total``. Admins get every row, users their own."""
        return self._call(usage(by, since, until, bucket))


class AsyncUsageMixin:
    """The async twin; the class needs ``_call``."""

    async def _call(self, op: api.Operation[T]) -> T:
        raise NotImplementedError

    async def usage(self, by: Dimension = "account", since: str | float = "30d",
                    until: str | float | None = None, bucket: Bucket = "total"
                    ) -> UsageReport:
        """See :meth:`UsageMixin.usage`."""
        return await self._call(usage(by, since, until, bucket))
