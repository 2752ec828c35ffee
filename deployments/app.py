"""The application builder that ``serve deploy`` and ``serve run`` call.

``import_path: deployments.app:build_app`` with the models and store in ``args``
and the use cases in the ``Ingress`` deployment's ``user_config`` (see
``deployments.config``). Models placed in a ``deployment`` get their own
``ModelServer`` with the resources their config asks for; everything else runs
inside the ingress.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.config import parse_app_args
from deployments.ingress import Ingress
from deployments.model_server import ModelServer

__all__ = ["build_app"]


def build_app(args: dict[str, Any]) -> Application:
    """Validate ``args`` and bind the ingress to one model deployment per heavy model."""
    config = parse_app_args(args)
    handles = {}
    for name, spec in config.remote_models().items():
        handles[name] = ModelServer.options(  # type: ignore[attr-defined]
            name=f"model-{name}",
            num_replicas=spec.num_replicas,
            ray_actor_options={"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus},
        ).bind(
            name,
            config.store,
            spec.version,
            spec.options,
            spec.max_batch_size,
            spec.batch_wait_timeout_s,
        )
    args = config.model_dump(mode="json")
    app: Application = Ingress.bind(args, handles)  # type: ignore[attr-defined]
    return app
