"""One router per route group, mounted on the ingress's FastAPI app
(``deployments/serve/ingress.py``): ``feedback``, ``admin`` (models, experiments,
dashboard), ``catalog`` (the live catalogue's admin API and online state), ``oip``
(Open Inference Protocol v2) and ``demo`` (the storefront)."""
