"""The indexer's FastAPI app: routers, problem details, rate limits, OpenAPI and health."""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware

from indexer.api.auth import token_subject
from indexer.api.deps import DB_CONCURRENCY, get_engine
from indexer.api.graphql.identity import identity_router
from indexer.api.graphql.telemetry import telemetry_router
from indexer.api.problems import (
    install_problem_handlers,
    problem_openapi,
    problem_response,
    problem_responses,
)
from indexer.api.ratelimit import RateLimiter, RateLimitMiddleware
from indexer.api.routes import (
    apps_battery,
    apps_energy,
    apps_energy_control,
    apps_energy_geo,
    apps_energy_openadr,
    apps_energy_settlements,
    apps_finance,
    apps_insurance,
    apps_proofs,
    credentials,
    dimo_auth,
    telemetry_proofs,
    telemetry_sessions,
    token_exchange,
)
from indexer.api.routes import auth as auth_routes
from indexer.api.routes import dapp as dapp_routes
from indexer.api.routes import governance as governance_routes
from indexer.api.routes import identity as identity_routes
from indexer.api.routes import rewards as rewards_routes
from indexer.api.routes import telemetry as telemetry_routes
from indexer.config import IndexerSettings
from indexer.db import make_engine
from protocol.apidocs import serve_docs
from protocol.problems import problem_details
from protocol.signal_labels import markdown_table

#: Connections past `DB_CONCURRENCY` the pool may open for a while (routes outside the limit).
DB_POOL_OVERFLOW = 10
#: Paths never rate limited (probes of orchestrators and load balancers).
HEALTH_PATH = "/healthz"
#: The dApp's build output (`make dapp`: vite over dapp/), served at `/` when it exists.
DAPP_DIST = Path(__file__).resolve().parents[2] / "dapp" / "dist"
#: The telemetry section of the docs: the signals with the labels and units the dApp shows.
_TELEMETRY_DOC = (
    "Readings of the COVESA VSS signals below, each within the caller's rights for its "
    "privilege, with a Merkle proof for every reading. Values are served in the VSS unit; the "
    "dApp shows each signal with the plain label and unit of this table (`protocol."
    "signal_labels`, also served in `GET /dapp/config.json`).\n\n" + markdown_table()
)

health_router = APIRouter(tags=["health"])


@health_router.get(
    HEALTH_PATH,
    summary="Liveness and database reachability",
    responses=problem_responses(503),
)
def healthz(engine: Annotated[Engine, Depends(get_engine)]) -> Any:
    """200 with `{"status": "ok"}` when the database answers, else a 503 problem."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return problem_response(
            problem_details(
                "database-unavailable",
                "Database unavailable",
                503,
                f"the database does not answer ({type(exc).__name__}); check "
                "DIMO_INDEXER_DATABASE_URL and the database server",
                instance=HEALTH_PATH,
            )
        )
    return {"status": "ok"}


def _caller_key(key: bytes) -> Callable[[Headers, str], str]:
    """Rate-limit key of a request: its token's wallet if the token is ours, else its IP."""

    def caller_key(headers: Headers, host: str) -> str:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            sub = token_subject(token.strip(), key)
            if sub is not None:
                return "wallet:" + sub.lower()
        return "ip:" + host

    return caller_key


def mount_dapp(app: FastAPI, dist: Path) -> bool:
    """Serves the built dApp: `index.html` at `/`, its bundles under `/assets` (gzip).

    Only the page and its assets are added (outside the OpenAPI document), so unknown paths
    and wrong methods still get the API's problems. Does nothing when `dist` has no build.

    Returns:
        Whether the dApp is served.
    """
    index = dist / "index.html"
    if not index.is_file():
        return False
    # The bundles go out gzip-compressed to a browser that accepts it (a third of the bytes).
    assets = StaticFiles(directory=dist / "assets", check_dir=False)
    app.mount("/assets", GZipMiddleware(assets, minimum_size=1024), name="assets")

    @app.get("/", include_in_schema=False)
    def dapp_page() -> FileResponse:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return True


def create_app(
    settings: IndexerSettings, engine: Engine, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The API over `engine`'s database.

    The tables (`indexer.db.metadata`, including `api_login_nonces`) must exist: migrations
    create them, not the app.

    Args:
        settings: Domain, URI and chain of Sign-In with Ethereum, JWT key and lifetimes,
            rate limit.
        engine: The index database.
        clock: Unix time in seconds, for nonces, messages, tokens and rate limits.

    Returns:
        The FastAPI application; its OpenAPI document is at `/openapi.json`.
    """
    app = FastAPI(
        title="DIMO indexer API",
        version="0.1.0",
        summary="Identity, rights and verified telemetry of the platform, with proofs.",
        description=(
            "Sign in with Ethereum (GET /auth/nonce, then POST /auth/login) for a short-lived "
            "bearer token. Every error is an RFC 9457 problem (`application/problem+json`) "
            "whose `type` URI is stable. Each caller (wallet, else IP address) has "
            f"{settings.rate_limit_per_minute or 'unlimited'} requests a minute, told in "
            "`RateLimit-*` headers."
        ),
        openapi_tags=[{"name": "telemetry", "description": _TELEMETRY_DOC}],
        docs_url=None,
        redoc_url=None,
    )
    serve_docs(app)  # Swagger UI at /docs and ReDoc at /redoc, from local assets
    secret = settings.jwt_secret
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock
    app.state.jwt_key = (
        secret.get_secret_value().encode() if secret is not None else secrets.token_bytes(32)
    )
    install_problem_handlers(app)
    app.include_router(health_router)
    # DIMO's GraphQL endpoints near the front: FastAPI tries routers in order, and an
    # Identity page is served at 300 requests a second (no other route has these paths).
    app.include_router(identity_router(settings))
    app.include_router(telemetry_router())
    app.include_router(auth_routes.router)
    app.include_router(identity_routes.router)
    app.include_router(governance_routes.router)
    app.include_router(telemetry_routes.router)
    app.include_router(telemetry_sessions.router)
    app.include_router(telemetry_proofs.router)
    app.include_router(rewards_routes.router)
    app.include_router(apps_proofs.router)
    app.include_router(apps_battery.router)
    app.include_router(apps_finance.router)
    app.include_router(apps_insurance.router)
    app.include_router(apps_energy.router)
    app.include_router(apps_energy_geo.router)
    app.include_router(apps_energy_openadr.router)
    app.include_router(apps_energy_settlements.router)
    app.include_router(apps_energy_control.router)
    app.include_router(dapp_routes.router)
    # DIMO's developer surface at the root, as DIMO's SDKs join paths (docs/indexer.md).
    app.include_router(dimo_auth.router)
    app.include_router(token_exchange.router)
    app.include_router(credentials.router)
    mount_dapp(app, DAPP_DIST)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=RateLimiter(settings.rate_limit_per_minute, clock),
        caller_key=_caller_key(app.state.jwt_key),
        exempt=frozenset({HEALTH_PATH}),
    )

    def openapi() -> dict[str, Any]:
        return problem_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def freeze_startup_heap() -> None:
    """Moves every object alive now (modules, the GraphQL schemas, the routes) out of the
    garbage collector's reach, for a server process about to serve.

    Python's oldest generation is collected every so often by walking every object in it. A
    server's start-up leaves hundreds of thousands there that live as long as the process, and
    walking them took about 100 ms, a pause of every request in flight (the Telemetry GraphQL's
    p99 at 300 requests a second was that pause). Frozen (`gc.freeze`), they are not walked
    again; what requests allocate is collected as before."""
    gc.collect()
    gc.freeze()


def app_from_env() -> FastAPI:
    """The app from `DIMO_INDEXER_*` settings (for `uvicorn --factory`)."""
    settings = IndexerSettings()
    prefix = "sqlite:///"
    url = settings.database_url
    if url.startswith(prefix) and ":memory:" not in url:
        Path(url[len(prefix) :].split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)
    # A pool as large as the requests that may hold a connection at once, kept open: the
    # default (5, and up to 10 more closed on return) would open and close PostgreSQL
    # connections under load, each a backend fork and a login.
    app = create_app(
        settings, make_engine(url, pool_size=DB_CONCURRENCY, max_overflow=DB_POOL_OVERFLOW)
    )
    freeze_startup_heap()
    return app
