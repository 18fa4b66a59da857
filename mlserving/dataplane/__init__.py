"""The data plane: everything a serving process does per request, and the
per-process state it reads (catalog snapshot, runtime cache, prediction
cache, codecs, the routing decision, inference, shadow copies, the event
hand-off).

It composes the domain apps' selectors and services (registry,
monitoring, experiments) and is imported by nobody but the edges (views,
the HTTP front, commands); import-linter checks both directions
(.importlinter). The entry points:

- `inference.prediction_serve()`: answer one /predict body;
- `serving.warmup()`: load what serves before the first request;
- `serving.status()`: what this process serves, for /health and /models.
"""
