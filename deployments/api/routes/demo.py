"""The demo storefront: ``/demo`` (a page) and the JavaScript client it imports, so a
frontend developer sees the client at work against the real service. Open routes:
the page asks for an ``infer`` key and keeps it in the tab."""

# No `from __future__ import annotations`: FastAPI reads these signatures.

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from deployments.api.errors import NotFound

__all__ = ["router"]

router = APIRouter()

_PAGE = Path(__file__).parents[1] / "static" / "demo.html"
_CLIENT = Path(__file__).resolve().parents[3] / "clients" / "js" / "src"  # the repository's
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@router.get(
    "/demo",
    response_class=HTMLResponse,
    summary="The demo storefront (a page built on the JavaScript client).",
)
async def demo_page() -> HTMLResponse:
    """Recommendations for a reader, impressions as they are seen, clicks."""
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"), headers=_HEADERS)


@router.get(
    "/demo/client/{name}",
    summary="The JavaScript client's modules, for the demo page.",
    responses={404: {"description": "No such module."}},
)
async def demo_client(name: str) -> Response:
    """One ES module of ``clients/js/src``."""
    path = _CLIENT / name
    if not name.endswith(".js") or "/" in name or not path.is_file():
        raise NotFound("client module", name, sorted(p.name for p in _CLIENT.glob("*.js")))
    return Response(
        path.read_text(encoding="utf-8"), media_type="text/javascript", headers=_HEADERS
    )
