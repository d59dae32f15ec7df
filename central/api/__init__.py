"""The HTTP API: thin routers over the service (contract §4); `api_router` is mounted at /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from central import auth, stream
from central.api import alerts, devices, health, reports, site
from central.api.schemas import COMMON_ERRORS

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    """Every /api/v1 route: token, alerts, stream, site, devices, reports."""
    router = APIRouter(prefix=API_PREFIX, responses=COMMON_ERRORS)
    for module in (auth, alerts, stream, site, devices, reports):
        router.include_router(module.router)
    return router


__all__ = ["API_PREFIX", "api_router", "health"]
