"""Liveness probe for container health checks and load balancers."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


@router.get("/healthz")
def healthz() -> Health:
    return Health(status="ok")
