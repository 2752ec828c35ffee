"""Offline training that needs a whole app config: a stack node's combiner.

Plain Python (no Ray): the stack's inputs are replayed with every model they need
loaded in this process, whatever their placement when served.
"""

from __future__ import annotations

import os

from blending.dag import BlendPlan
from blending.gateway import LocalModels
from blending.stacking import collect_stack_examples, publish_stacker, read_feedback, stack_node
from deployments.config import AppConfig, resolve_store
from models.errors import ConfigError, VersionExistsError
from models.registry import load_model
from models.store import ArtifactStore, Manifest

__all__ = ["train_stack"]


def train_stack(
    app: AppConfig,
    use_case: str,
    node: str,
    feedback: str | os.PathLike[str],
    *,
    version: str | None = None,
    seed: int = 7,
    skip_existing: bool = False,
) -> tuple[Manifest, int] | None:
    """Fit and publish the combiner of ``use_case``'s stack ``node`` from ``feedback``.

    Publishes under the node's model name at ``version`` (default: the version the
    config serves). An existing version raises ``VersionExistsError``, or returns
    ``None`` when ``skip_existing``. Returns the manifest and the number of examples.
    """
    spec = app.live.use_cases.get(use_case)
    if spec is None:
        raise ConfigError(f"no use case {use_case!r} (have {sorted(app.live.use_cases)})")
    stack = stack_node(spec, use_case, node)
    target = version or app.rollouts[stack.model].version
    store = ArtifactStore(resolve_store(app.args.store))
    if target in store.versions(stack.model):
        if skip_existing:
            return None
        raise VersionExistsError(
            f"{stack.model} version {target} is already published; pass a new --version"
        )
    needed = sorted(
        {
            model
            for name in stack.inputs
            for n in spec.reachable(name)
            for model in spec.nodes[n].models()
        }
    )
    models = app.args.models
    versions = {m: app.rollouts[m].version for m in needed}
    adapters = {m: load_model(store, m, versions[m], models[m].options) for m in needed}
    plan = BlendPlan(use_case, spec)
    examples = collect_stack_examples(plan, node, read_feedback(feedback), LocalModels(adapters))
    manifest = publish_stacker(
        examples,
        store,
        stack.model,
        target,
        seed=seed,
        extra={
            "use_case": use_case,
            "node": node,
            "feedback": str(feedback),
            "feature_names": examples.feature_names,
            "input_versions": {m: models[m].version for m in needed},
        },
    )
    return manifest, len(examples.labels)
