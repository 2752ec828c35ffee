"""Ray Serve wiring: the deployment classes and the application builder.

Everything decorated with ``@serve.deployment`` lives here: the HTTP ``Ingress``
(routes, the blend in process), the batched ``ModelServer``, the ``Catalog`` and
the ``EventLog``; ``app.build_app`` binds them into one application from a Serve
config's ``args``. The plain logic they run lives in the other rooms.
"""
