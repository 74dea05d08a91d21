"""``GET /healthz``: liveness and the engine's batching counters (no key needed)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from aimod.server.deps import current_served
from aimod.server.served import Served

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz(request: Request, served: Annotated[Served, Depends(current_served)]) -> dict[str, Any]:
    """Liveness: the model and the batching counters."""
    stats = served.engine.stats
    return {
        "status": "ok",
        "model": served.name,
        "task": served.kind,
        "uptime_s": round(time.time() - request.app.state.started, 1),
        "batches": stats.batches,
        "rows": stats.rows,
        "largest_batch": stats.largest,
    }
