"""The HTTP surface: request and response bodies, the edge (body size, CORS, API
keys, rate limits), where status codes are decided, the routers mounted on the
ingress, the Open Inference Protocol codec and the OpenAPI document.

Nothing here runs a blend or loads a model: routes reach the replica's state
through :func:`deployments.api.state.this_ingress`.
"""
