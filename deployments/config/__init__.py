"""Configuration: the application ``args`` and the Ingress's live ``user_config``
(``app``), reading a Serve config file (``serve_file``), the data, ingress and path
settings they hold. Pydantic, no Ray; every error names the file and field.
"""

from deployments.config.app import (
    HEAVY_FORMATS,
    INGRESS_DEPLOYMENT,
    PSEUDONYM_SALT_ENV,
    RESULT_KEY_ENV,
    AppArgs,
    AppConfig,
    AutoscalingConfig,
    CpuPoolConfig,
    LiveConfig,
    ModelConfig,
    misplaced_versions,
    parse_app_args,
    parse_live_config,
    parse_rollout,
)
from deployments.config.data import EventsConfig, LiveCatalogConfig, OnlineConfig
from deployments.config.ingress import IngressConfig
from deployments.config.paths import resolve_store
from deployments.config.rollout import RolloutConfig, model_deployment
from deployments.config.serve_file import IMPORT_PATHS, load_app, load_serve_config, move_model
from deployments.config.tracing import TracingConfig

__all__ = [
    "HEAVY_FORMATS",
    "IMPORT_PATHS",
    "INGRESS_DEPLOYMENT",
    "PSEUDONYM_SALT_ENV",
    "RESULT_KEY_ENV",
    "AppArgs",
    "AppConfig",
    "AutoscalingConfig",
    "CpuPoolConfig",
    "EventsConfig",
    "IngressConfig",
    "LiveCatalogConfig",
    "LiveConfig",
    "ModelConfig",
    "OnlineConfig",
    "RolloutConfig",
    "TracingConfig",
    "load_app",
    "load_serve_config",
    "misplaced_versions",
    "model_deployment",
    "move_model",
    "parse_app_args",
    "parse_live_config",
    "parse_rollout",
    "resolve_store",
]
