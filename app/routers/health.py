"""Liveness probe for container health checks and load balancers."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


@router.get("/healthz")
async def healthz() -> Health:  # async: it never waits for a thread of the pool
    return Health(status="ok")
