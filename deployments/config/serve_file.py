"""Reading a Serve config file: every blendserve application in it, both halves
(``args`` and the Ingress's ``user_config``) validated against each other, and
each model's live versions found in exactly one place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from deployments.config.app import (
    INGRESS_DEPLOYMENT,
    AppArgs,
    AppConfig,
    LiveConfig,
    parse_app_args,
    parse_live_config,
    parse_rollout,
)
from deployments.config.rollout import RolloutConfig, model_deployment
from models.errors import ConfigError

__all__ = ["IMPORT_PATHS", "load_app", "load_serve_config", "move_model"]

IMPORT_PATHS = ("deployments.app:build_app", "deployments.serve.app:build_app")
"""The ``import_path`` values of a blendserve application (the first is the public one)."""


def _rollouts(
    app: dict[str, Any], args: AppArgs, live: LiveConfig, where: str
) -> dict[str, RolloutConfig]:
    """Each model's live versions, from exactly one place: its fixed ``args`` version, its
    own deployment's ``user_config``, or the Ingress's ``user_config.models``."""
    deployments = {
        str(d.get("name")): (index, d)
        for index, d in enumerate(app.get("deployments") or [])
        if isinstance(d, dict)
    }
    for name in live.models:
        if name not in args.models:
            raise ConfigError(
                f"{where}: Ingress user_config.models.{name}: no model {name!r} in args.models"
            )
    rollouts: dict[str, RolloutConfig] = {}
    for name, spec in args.models.items():
        found: list[tuple[str, RolloutConfig]] = []
        if spec.version is not None:
            found.append((f"args.models.{name}.version", RolloutConfig(version=spec.version)))
        if name in live.models:
            found.append((f"Ingress user_config.models.{name}", live.models[name]))
        entry = deployments.get(model_deployment(name))
        if entry is not None and entry[1].get("user_config") is not None:
            index, deployment = entry
            at = f"{where}.deployments.{index}.user_config"
            found.append((at, parse_rollout(deployment["user_config"], at)))
            pool = deployments.get(model_deployment(name) + "-cpu")
            if spec.cpu_pool is not None and (
                pool is None or pool[1].get("user_config") != deployment["user_config"]
            ):
                raise ConfigError(
                    f"{where}: model {name!r} has a cpu_pool: give deployment "
                    f"{model_deployment(name)}-cpu the same user_config as "
                    f"{model_deployment(name)} (a YAML anchor keeps them in step)"
                )
        if not found:
            raise ConfigError(
                f"{where}: model {name!r} has no version: set it in the user_config of "
                f"deployment {model_deployment(name)!r} (live swaps), in the Ingress's "
                f"user_config.models.{name} (inline models), or as args.models.{name}.version"
            )
        if len(found) > 1:
            places = " and ".join(place for place, _ in found)
            raise ConfigError(f"{where}: model {name!r}: version set twice, in {places}")
        placement = spec.placement
        place = found[0][0]
        if placement in ("replica", "deployment") and place.startswith("Ingress"):
            raise ConfigError(
                f"{where}: model {name!r} runs in deployment {model_deployment(name)!r}: "
                f"move {place} to that deployment's user_config"
            )
        if placement == "inline" and ".deployments." in place:
            raise ConfigError(
                f"{where}: model {name!r} runs inline in the Ingress: move {place} to the "
                f"Ingress's user_config.models.{name}"
            )
        rollouts[name] = found[0][1]
    return rollouts


def _ingress_user_config(app: dict[str, Any], where: str) -> tuple[Any, str]:
    deployments = app.get("deployments") or []
    for index, deployment in enumerate(deployments):
        if isinstance(deployment, dict) and deployment.get("name") == INGRESS_DEPLOYMENT:
            return deployment.get("user_config"), f"{where}.deployments.{index}.user_config"
    raise ConfigError(
        f"{where}.deployments: expected a deployment named {INGRESS_DEPLOYMENT!r} whose "
        "user_config holds the use cases"
    )


def load_serve_config(path: str | os.PathLike[str]) -> dict[str, AppConfig]:
    """Read a Serve config file and validate every blendserve application in it."""
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{source}: cannot read YAML: {exc}") from exc
    applications = data.get("applications") if isinstance(data, dict) else None
    if not isinstance(applications, list) or not applications:
        raise ConfigError(
            f"{source}: expected a Serve config with a non-empty `applications:` list"
        )
    apps: dict[str, AppConfig] = {}
    for index, app in enumerate(applications):
        where = f"{source}: applications.{index}"
        if not isinstance(app, dict) or "import_path" not in app:
            raise ConfigError(f"{where}: expected a mapping with `import_path`")
        if str(app["import_path"]) not in IMPORT_PATHS:
            continue  # another team's application; Serve validates it
        name = str(app.get("name", "default"))
        args = parse_app_args(app.get("args") or {}, f"{where}.args")
        user_config, live_where = _ingress_user_config(app, where)
        live = parse_live_config(user_config, args.models, live_where, args)
        apps[name] = AppConfig(args, live, _rollouts(app, args, live, where))
    if not apps:
        raise ConfigError(f"{source}: no application uses import_path deployments.app:build_app")
    return apps


def load_app(path: str | os.PathLike[str], name: str | None = None) -> tuple[str, AppConfig]:
    """The application ``name`` of a Serve config file (default: its first blendserve
    application), with its name; ``ConfigError`` naming the ones there otherwise."""
    apps = load_serve_config(path)
    chosen = name or next(iter(apps))
    if chosen not in apps:
        raise ConfigError(f"{path}: no blendserve application {chosen!r} ({sorted(apps)})")
    return chosen, apps[chosen]


def move_model(app: dict[str, Any], model: str, placement: str) -> None:
    """Change where ``model`` of a Serve config's application (``app``, as data) runs:
    ``inline`` in the Ingress or ``replica`` in its own deployment, moving its live
    versions with it (the Ingress's ``user_config.models`` or the ``model-<name>``
    deployment's ``user_config``), as a person would edit the file."""
    if placement not in ("inline", "replica"):
        raise ConfigError(
            f"model {model!r}: placement must be inline or replica, got {placement!r}"
        )
    app["args"]["models"][model]["placement"] = placement
    deployments: list[dict[str, Any]] = app.setdefault("deployments", [])
    ingress = next(d for d in deployments if d.get("name") == INGRESS_DEPLOYMENT)
    models = ingress.setdefault("user_config", {}).setdefault("models", {})
    own = [d for d in deployments if d.get("name") == model_deployment(model)]
    if placement == "inline":
        for deployment in own:
            deployments.remove(deployment)
            if deployment.get("user_config") is not None:
                models[model] = deployment["user_config"]
        return
    versions = models.pop(model, None)
    if not models:
        ingress["user_config"].pop("models")
    if own:
        if versions is not None:
            own[0]["user_config"] = versions
        return
    entry: dict[str, Any] = {"name": model_deployment(model)}
    if versions is not None:
        entry["user_config"] = versions
    deployments.insert(0, entry)
