"""The floor: a bare one-deployment Ray Serve app, a FastAPI ingress that answers a
tiny JSON. Whatever blendserve spends beyond this is its own work.

``serve deploy benchmarks/configs/echo.yaml`` (with the repository on ``PYTHONPATH``)
serves ``POST /echo``.
"""

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

__all__ = ["build_app"]

api = FastAPI(title="echo")


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(api)
class Echo:
    """Answers every POST with ``{"ok": true}``; the body is not read."""

    @api.post("/echo")
    async def echo(self) -> dict[str, bool]:
        """A constant, tiny answer."""
        return {"ok": True}


def build_app(args: dict[str, Any]) -> Application:
    """The echo app (``args`` are unused)."""
    app: Application = Echo.bind()  # type: ignore[attr-defined]
    return app
