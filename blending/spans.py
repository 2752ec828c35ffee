"""The hook a blend's nodes are traced through, with no tracing library here.

``blending/`` stays plain Python: a request that wants its nodes traced passes a
:class:`NodeSpans` in its ``BlendContext`` (the ingress passes one built on
OpenTelemetry, ``deployments/tracing.py``), and each node runs inside the span it
opens. Without one (the default) no span is opened: tracing that is off costs a
``None`` check per node.

The span must be current while the node runs, so that a model call made inside
it (in the same task, or a task started inside it) is its child: an
implementation sets its span in the ``contextvars`` context, as OpenTelemetry's
``start_as_current_span`` does.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, TypeAlias

__all__ = ["NodeSpan", "NodeSpans", "SpanValue"]

SpanValue: TypeAlias = str | bool | int | float
"""What a span attribute may hold."""


class NodeSpan(Protocol):
    """An open span a node notes what it did on."""

    def set_attribute(self, key: str, value: SpanValue) -> None:
        """Record ``key = value`` on the span."""


class NodeSpans(Protocol):
    """Opens one span per node of a blend."""

    def node(self, name: str, kind: str) -> AbstractContextManager[NodeSpan]:
        """A span for node ``name`` of ``kind``, current while the context is entered;
        an exception leaving it marks the span failed."""
