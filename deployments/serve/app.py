"""The application builder that ``serve deploy`` and ``serve run`` call.

``import_path: deployments.app:build_app`` with the models and store in ``args``
and the use cases in the ``Ingress`` deployment's ``user_config`` (see
``deployments.config.app``). Models placed in a ``deployment`` get their own
``ModelServer`` with the resources their config asks for; everything else runs
inside the ingress.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.config import parse_app_args, resolve_store
from deployments.hosting.gateway import CPU_POOL_SUFFIX
from deployments.serve.catalog import Catalog
from deployments.serve.event_log import EventLog
from deployments.serve.ingress import Ingress
from deployments.serve.model_server import ModelServer
from models.store import ArtifactStore

__all__ = ["build_app"]


def build_app(args: dict[str, Any]) -> Application:
    """Validate ``args`` and bind the ingress to one model deployment per replica model.

    A model with a ``cpu_pool`` gets a second deployment, ``model-<name>-cpu``,
    that takes its overflow. With ``events`` (the default) an ``EventLog``
    deployment keeps served lists and feedback.
    """
    config = parse_app_args(args)
    store = ArtifactStore(resolve_store(config.store))
    handles: dict[str, Any] = {}
    for name, placement in config.placements(store).items():
        if placement != "replica":
            continue
        spec = config.models[name]
        server_args = (
            name,
            config.store,
            spec.version,
            spec.options,
            spec.max_batch_size,
            spec.batch_wait_timeout_s,
            spec.batch_target_ms,
            config.tracing.model_dump(mode="json"),
            config.ingress.request_log.model_dump(mode="json"),
        )
        scaling: dict[str, Any] = (
            {"autoscaling_config": spec.autoscaling.to_serve()}
            if spec.autoscaling
            else {"num_replicas": spec.num_replicas}
        )
        handles[name] = ModelServer.options(  # type: ignore[attr-defined]
            name=f"model-{name}",
            max_ongoing_requests=spec.max_ongoing_requests,
            max_queued_requests=spec.max_queued_requests,
            ray_actor_options=spec.actor_options(),
            **scaling,
        ).bind(*server_args)
        if spec.cpu_pool is not None:
            handles[f"{name}{CPU_POOL_SUFFIX}"] = ModelServer.options(  # type: ignore[attr-defined]
                name=f"model-{name}{CPU_POOL_SUFFIX}",
                max_ongoing_requests=spec.max_ongoing_requests,
                num_replicas=spec.cpu_pool.num_replicas,
                ray_actor_options=spec.actor_options(cpu_pool=True),
            ).bind(*server_args)
    event_log = None
    if config.events is not None:
        events = config.events
        event_log = EventLog.options(  # type: ignore[attr-defined]
            name="EventLog",
            ray_actor_options={"num_cpus": events.num_cpus, "resources": events.resources},
        ).bind(events, config.store)
    catalog = None
    if config.live_catalog is not None:
        live = config.live_catalog
        catalog = Catalog.options(  # type: ignore[attr-defined]
            name="Catalog",
            num_replicas=live.num_replicas,
            ray_actor_options={"num_cpus": live.num_cpus, "resources": live.resources},
        ).bind(live, live.seed or config.catalog)
    app: Application = Ingress.bind(  # type: ignore[attr-defined]
        config.model_dump(mode="json"), handles, event_log, catalog
    )
    return app
