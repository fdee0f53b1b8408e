"""Builds the OpenAPI 3.1 document from the app's ``url_map``, each view's
:class:`~simfarm.gateway.openapi.registry.RouteDoc` and the pydantic models they name.

Nothing here is hand-written schema: every body schema is pydantic's JSON Schema
(draft 2020-12, which OpenAPI 3.1 uses), gathered under ``components/schemas``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from werkzeug.routing import Rule

from simfarm import __version__
from simfarm.gateway.openapi.bodies import ErrorBody
from simfarm.gateway.openapi.registry import RouteDoc, route_doc

REF_TEMPLATE = "#/components/schemas/{model}"
_ARG = re.compile(r"<(?:(?P<conv>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_CONVERTER_SCHEMA = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
_STRING = {"type": "string"}
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


class UndocumentedRoute(LookupError):
    """A route of the app has no ``@document`` metadata."""


@dataclass
class _Schemas:
    """Collects every type used by the document so pydantic generates them in one go."""

    entries: list[tuple[int, JsonSchemaMode, TypeAdapter[Any]]]

    def add(self, type_: Any, mode: JsonSchemaMode) -> int:
        self.entries.append((len(self.entries), mode, TypeAdapter(type_)))
        return len(self.entries) - 1

    def generate(self) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
        if not self.entries:
            return {}, {}
        by_key, defs = TypeAdapter.json_schemas(self.entries, ref_template=REF_TEMPLATE)
        return {key: schema for (key, _mode), schema in by_key.items()}, defs.get("$defs", {})


def openapi_path(rule: Rule) -> str:
    """``/jobs/<job_id>`` → ``/jobs/{job_id}``."""
    return _ARG.sub(lambda m: "{" + m.group("name") + "}", rule.rule)


def documented_rules(app: Flask) -> list[tuple[Rule, RouteDoc | None]]:
    """Every rule of the app with its metadata (None when undocumented)."""
    out = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        out.append((rule, route_doc(view) if view is not None else None))
    return out


def undocumented(app: Flask) -> list[str]:
    """``"METHOD /path (endpoint)"`` for each route without metadata."""
    return [
        f"{','.join(sorted((rule.methods or set()) - IGNORED_METHODS))} {rule.rule} "
        f"({rule.endpoint})"
        for rule, doc in documented_rules(app)
        if doc is None
    ]


def _parameters(
    rule: Rule, doc: RouteDoc, schemas: _Schemas, pending: list[tuple[dict[str, Any], int]]
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for match in _ARG.finditer(rule.rule):
        name = match.group("name")
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": doc.path_params.get(name, ""),
                "schema": dict(_CONVERTER_SCHEMA.get(match.group("conv") or "", _STRING)),
            }
        )
    if doc.query is not None:
        if not (isinstance(doc.query, type) and issubclass(doc.query, BaseModel)):
            raise TypeError(f"query of {rule.endpoint} must be a pydantic model")
        for name, info in doc.query.model_fields.items():
            param: dict[str, Any] = {
                "name": info.alias or name,
                "in": "query",
                "required": info.is_required(),
                "description": info.description or "",
            }
            # A field's schema is taken from the model's own schema, so constraints
            # (patterns, bounds, enums) show exactly as pydantic validates them.
            pending.append((param, schemas.add(doc.query, "validation")))
            param["x-field"] = name
            params.append(param)
    for name, text in doc.headers.items():
        params.append(
            {"name": name, "in": "header", "required": False, "description": text,
             "schema": {"type": "string"}}
        )
    return params


def _operation_id(endpoint: str, method: str, index: int, multiple: bool) -> str:
    base = endpoint.replace(".", "_")
    if multiple:
        base = f"{base}_{method.lower()}"
    return base if index == 0 else f"{base}_{index + 1}"


#: What every gateway may answer before a route runs (web_guard.py, gunicorn).
_GUARD_ANSWERS = {
    "400": "the Host header is not one of the gateway's names (DNS rebinding), or the "
           "request is malformed",
    "414": "the request line is longer than the server accepts (plain text, not JSON)",
}
_UNSAFE_ANSWERS = {
    "403": "a browser's cross-origin request (Origin or Sec-Fetch-Site), or not allowed",
    "415": "a form-encoded, multipart or text/plain body (what a cross-site form sends)",
}


def _add_guard_answers(responses: dict[str, Any], method: str, schemas: Any,
                       refs: list[Any]) -> None:
    answers = dict(_GUARD_ANSWERS)
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        answers.update(_UNSAFE_ANSWERS)
    for status, description in answers.items():
        if status in responses:
            continue
        entry: dict[str, Any] = {"description": description}
        if status != "414":
            media: dict[str, Any] = {}
            refs.append((media, "schema", schemas.add(ErrorBody, "serialization")))
            entry["content"] = {"application/json": media}
        responses[status] = entry


def build_openapi(app: Flask, *, strict: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``. With ``strict``, an undocumented route raises
    :class:`UndocumentedRoute`; otherwise it is left out."""
    from simfarm.gateway.auth import is_public  # auth documents its routes with this package

    schemas = _Schemas([])
    paths: dict[str, dict[str, Any]] = {}
    refs: list[tuple[dict[str, Any], str, int]] = []  # (holder, key, schema index)
    query_refs: list[tuple[dict[str, Any], int]] = []
    seen: dict[str, int] = {}
    tags: dict[str, None] = {}
    missing = []
    rules = sorted(documented_rules(app), key=lambda item: (openapi_path(item[0]), item[0].rule))
    for rule, doc in rules:
        if doc is None:
            missing.append(rule.rule)
            continue
        methods = sorted((rule.methods or set()) - IGNORED_METHODS)
        path_item = paths.setdefault(openapi_path(rule), {})
        for method in methods:
            index = seen.get(f"{rule.endpoint}:{method}", 0)
            seen[f"{rule.endpoint}:{method}"] = index + 1
            op: dict[str, Any] = {
                "operationId": _operation_id(rule.endpoint, method, index, len(methods) > 1),
                "summary": doc.summary,
            }
            if doc.description:
                op["description"] = doc.description
            if doc.tags:
                op["tags"] = list(doc.tags)
                tags.update(dict.fromkeys(doc.tags))
            if doc.deprecated:
                op["deprecated"] = True
            if doc.websocket:
                op["x-websocket"] = True
            params = _parameters(rule, doc, schemas, query_refs)
            if params:
                op["parameters"] = params
            if doc.body is not None and method in ("POST", "PUT", "PATCH"):
                media: dict[str, Any] = {}
                if doc.body.type is not None:
                    refs.append((media, "schema", schemas.add(doc.body.type, "validation")))
                op["requestBody"] = {
                    "required": True,
                    "content": {doc.body.media_type or "application/json": media},
                }
                if doc.body.description:
                    op["requestBody"]["description"] = doc.body.description
            responses: dict[str, Any] = {}
            for status, body in sorted(doc.responses.items()):
                entry: dict[str, Any] = {"description": body.description or _reason(status)}
                if body.type is not None or body.media_type:
                    media = {}
                    if body.type is not None:
                        refs.append((media, "schema", schemas.add(body.type, "serialization")))
                    entry["content"] = {body.media_type or "application/json": media}
                responses[str(status)] = entry
            if is_public(app.view_functions.get(rule.endpoint)):
                op["security"] = []
            elif "401" not in responses:
                media = {}
                refs.append((media, "schema", schemas.add(ErrorBody, "serialization")))
                responses["401"] = {"description": "missing or invalid token (token mode)",
                                    "content": {"application/json": media}}
            _add_guard_answers(responses, method, schemas, refs)
            op["responses"] = responses or {"200": {"description": "OK"}}
            path_item[method.lower()] = op
    if missing and strict:
        raise UndocumentedRoute(
            "routes without @document metadata (see simfarm/gateway/openapi/registry.py): "
            + ", ".join(missing)
        )
    generated, components = schemas.generate()
    for holder, key, index in refs:
        holder[key] = generated[index]
    for param, index in query_refs:
        model_schema = generated[index]
        name = param.pop("x-field")
        target = model_schema
        if "$ref" in model_schema:
            target = components[model_schema["$ref"].rsplit("/", 1)[-1]]
        prop = dict(target.get("properties", {}).get(name, {"type": "string"}))
        prop.pop("title", None)
        prop.pop("description", None)
        options = prop.get("anyOf", [])
        if len(options) == 2 and {"type": "null"} in options:  # "optional" is required=false
            prop.pop("anyOf")
            prop.update(next(o for o in options if o != {"type": "null"}))
            if prop.get("default", 0) is None:
                prop.pop("default")
        param["schema"] = prop
    # The query models are described as parameters; keep them out of the schema list
    # unless something else refers to them.
    _drop_unreferenced(components, paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "simfarm gateway",
            "version": __version__,
            "description": "REST API of simfarm: submit, follow and manage simulation jobs "
            "on a farm of machines. Errors are JSON `{error, detail, fields}`.",
        },
        "tags": [{"name": name} for name in sorted(tags, key=_tag_rank)],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `simfarm hash-token`; required when the "
                    "gateway has tokens configured (always when it listens beyond loopback)",
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }


TAG_ORDER = ("jobs", "workers", "limits", "accounts", "events", "service", "meta", "dashboard",
             "pyedb")


def _tag_rank(tag: str) -> tuple[int, str]:
    return (TAG_ORDER.index(tag) if tag in TAG_ORDER else len(TAG_ORDER) - 1, tag)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def _refs(value: Any) -> set[str]:
    text = json.dumps(value)
    return set(re.findall(r'"#/components/schemas/([^"]+)"', text))


def _drop_unreferenced(components: dict[str, Any], paths: dict[str, Any]) -> None:
    """Keep only the schemas reachable from the paths (query models become parameters)."""
    reachable: set[str] = set()
    todo = _refs(paths)
    while todo:
        name = todo.pop()
        if name in reachable or name not in components:
            continue
        reachable.add(name)
        todo |= _refs(components[name])
    for name in list(components):
        if name not in reachable:
            del components[name]
