"""Third-party browser assets served from installed Python packages (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gradient_flow_lab.app.resources import plotly_js_path

router = APIRouter(tags=["vendor"])

PLOTLY_JS = plotly_js_path()


@router.get("/vendor/plotly.min.js", include_in_schema=False)
def plotly_js() -> FileResponse:
    # ~4.8 MB; it only changes when the plotly package is upgraded, so let browsers cache it.
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
