"""RFC 9457 problem details: the response of every API error, and their OpenAPI description."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from apps.exceptions import AppError, AppParameterInvalid
from indexer.exceptions import ApiProblem, InvalidToken, TokenRejected
from protocol.problems import PROBLEM_BASE, PROBLEM_JSON, problem_details

log = logging.getLogger(__name__)

#: Stable `type` URIs of the problems not raised as an `ApiProblem` subclass.
VALIDATION_ERROR: Final = PROBLEM_BASE + "validation-error"
INTERNAL_ERROR: Final = PROBLEM_BASE + "internal-error"
DATABASE_UNAVAILABLE: Final = PROBLEM_BASE + "database-unavailable"
_HTTP_SLUGS: Final = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "content-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    503: "service-unavailable",
}
_HTTP_TITLES: Final = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    429: "Too many requests",
    503: "Service unavailable",
}
#: (status, slug, title, extension members of an error).
_DomainProblem = tuple[int, str, str, Callable[[Any], dict[str, Any]]]
#: The domain errors the API answers with (not `ApiProblem`s, which carry their own): class ->
#: (status, stable slug, title, the extension members taken from the error). A subclass
#: takes its nearest listed base's entry; an error listed nowhere is a 500.
DOMAIN_PROBLEMS: Final[
    dict[type[Exception], tuple[int, str, str, Callable[[Any], dict[str, Any]]]]
] = {
    AppParameterInvalid: (
        400,
        "invalid-app-parameter",
        "Invalid application parameter",
        lambda exc: {"parameter": exc.parameter},
    ),
}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


class Problem(BaseModel):
    """An RFC 9457 problem details object; problem types may add extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable URI naming the problem type", examples=[VALIDATION_ERROR])
    title: str = Field(description="Short summary of the problem type")
    status: int = Field(description="HTTP status code")
    detail: str | None = Field(None, description="What went wrong here and how to fix it")
    instance: str | None = Field(None, description="Path of the request that failed")


class InvalidParam(BaseModel):
    """One invalid part of a request."""

    pointer: str = Field(description="JSON Pointer (RFC 6901) into the request, e.g. /body/nonce")
    detail: str = Field(description="What is wrong with it")


class ValidationProblem(Problem):
    """The problem of a request whose parameters or body fail validation (422)."""

    errors: list[InvalidParam] = Field(description="Every invalid part of the request")


def http_type_uri(status: int) -> str:
    """The stable problem `type` of a bare HTTP error with `status`."""
    return PROBLEM_BASE + _HTTP_SLUGS.get(status, f"http-{status}")


def problem_response(
    problem: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    """An `application/problem+json` response carrying `problem` with its status."""
    return Response(
        _dumps(dict(problem)),
        status_code=int(problem["status"]),
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _pointer(loc: Sequence[Any]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in loc)


async def _on_api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    headers: dict[str, str] = {}
    if isinstance(exc, TokenRejected):
        # RFC 6750 section 3: a 401 names the scheme, and the error if a token was sent.
        headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token"'
            if isinstance(exc, InvalidToken) or type(exc) is not TokenRejected
            else "Bearer"
        )
    retry = exc.context.get("retry_after")
    if isinstance(retry, int):
        headers["Retry-After"] = str(retry)
    return problem_response({**exc.problem(), "instance": request.url.path}, headers)


def domain_problem(exc: Exception) -> dict[str, Any] | None:
    """The problem object (without `instance`) of a domain error in `DOMAIN_PROBLEMS`, or
    None when no class of `exc` is listed."""
    for cls in type(exc).__mro__:
        entry = DOMAIN_PROBLEMS.get(cls)
        if entry is not None:
            status, slug, title, extensions = entry
            detail = getattr(exc, "detail", None) or str(exc)
            return problem_details(slug, title, status, detail, **extensions(exc))
    return None


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    problem = domain_problem(exc)
    if problem is None:
        return await _on_unexpected(request, exc)
    return problem_response({**problem, "instance": request.url.path})


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    title = _HTTP_TITLES.get(status, "HTTP error")
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail is not None and detail.lower() == title.lower():
        detail = None
    slug = _HTTP_SLUGS.get(status, f"http-{status}")
    body = problem_details(slug, title, status, detail or None, instance=request.url.path)
    return problem_response(body, exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"pointer": _pointer(err.get("loc", ())), "detail": str(err.get("msg", "invalid"))}
        for err in exc.errors()
    ]
    return problem_response(
        problem_details(
            "validation-error",
            "Invalid request",
            422,
            "; ".join(f"{e['pointer']}: {e['detail']}" for e in errors)[:1000],
            instance=request.url.path,
            errors=errors,
        )
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        problem_details(
            "internal-error",
            "Internal server error",
            500,
            "the server failed to answer; the error is logged, please report it",
            instance=request.url.path,
        )
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` an RFC 9457 problem: typed, HTTP, validation and crashes."""
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(AppError, _on_domain_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problems with `statuses` (for a route's `responses=`)."""
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": _HTTP_TITLES.get(status, "Error") + " (problem details)",
            "content": {PROBLEM_JSON: {"schema": ref}},
        }
        for status in statuses
    }


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """`app`'s OpenAPI document with problem schemas, 422 as problems and 429 everywhere.

    Assign `app.openapi = lambda: problem_openapi(app)`; the document is built once.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, InvalidParam, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas[model.__name__] = schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    validation = {
        "description": "Invalid parameters or body (problem details)",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}},
    }
    too_many = problem_responses(429)[429]
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "422" in responses:
                responses["422"] = validation
            responses.setdefault("429", too_many)
    app.openapi_schema = doc
    return doc
