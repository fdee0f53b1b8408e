"""OpenAPI 3.1 for the gateway: route metadata (:func:`document`), the document builder
and the routes serving ``/api/v1/openapi.json`` and the Swagger UI at ``/api/v1/docs``."""

from simfarm.gateway.openapi.builder import UndocumentedRoute, build_openapi, undocumented
from simfarm.gateway.openapi.registry import Body, RouteDoc, document, route_doc

__all__ = [
    "Body",
    "RouteDoc",
    "UndocumentedRoute",
    "build_openapi",
    "document",
    "route_doc",
    "undocumented",
]
