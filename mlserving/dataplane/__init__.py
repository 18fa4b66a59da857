"""The data plane: everything a serving process does per request, and the
per-process state it reads (catalog snapshot, runtime cache, prediction
cache, codecs, the routing decision, inference, shadow copies, the event
hand-off).

It composes the domain apps' selectors and services (registry,
monitoring, experiments) and is imported by nobody but the edges (views,
the HTTP front, commands); import-linter checks both directions
(.importlinter). The entry points:

- `inference.prediction_serve_async()`: answer one /predict body on an
  event loop (the HTTP front's route, `endpoints.predict`);
- `inference.prediction_serve()`: the same in the calling thread (the
  Django view, `views.PredictApi`);
- `serving.warmup()`: load what serves before the first request;
- `serving.status()`, `serving.loaded_labels()`: what this process serves,
  for /health, /metrics and /models.
"""
