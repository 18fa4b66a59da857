"""The one view: POST a /predict body, get labels and probabilities."""

import os

import numpy as np
import orjson
from django.http import HttpRequest, HttpResponse

from registry.runtimes import ModelRuntime, runtime_class

RUNTIME = os.environ.get("BARE_RUNTIME", "sklearn")
MODELS: dict[str, ModelRuntime] = {}


def models_load() -> list[str]:
    """Load every model of BARE_MODELS with BARE_RUNTIME and call each once
    (the first call into a model is slow). The names loaded."""
    for pair in filter(None, os.environ.get("BARE_MODELS", "").split(",")):
        name, path = pair.split("=", 1)
        with open(path, "rb") as file:
            runtime = runtime_class(RUNTIME)(file.read())
        runtime.load()
        MODELS[name] = runtime
    for runtime in MODELS.values():
        width = runtime.signature().n_features or 1
        runtime.infer(np.zeros((1, width)))
    return list(MODELS)


def _json(payload: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(
        orjson.dumps(payload), content_type="application/json", status=status
    )


def predict(request: HttpRequest) -> HttpResponse:
    """POST {"model": NAME, "features": [...] or [[...], ...]}; GET says
    what this process serves (readiness)."""
    if request.method == "GET":
        return _json({"runtime": RUNTIME, "models": list(MODELS), "pid": os.getpid()})
    if request.method != "POST":
        return _json({"error": "POST a JSON body"}, 405)
    try:
        body = orjson.loads(request.body)
        runtime = MODELS[body["model"]]
        features = body["features"]
        single = not isinstance(features[0], list)
        rows = np.array([features] if single else features, dtype=np.float64)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        return _json({"error": "bad request"}, 400)
    labels, proba = runtime.infer(rows)
    labels = labels.tolist()
    proba = proba.tolist() if proba is not None else None
    if single:
        answer = {"prediction": labels[0], "probabilities": proba and proba[0]}
    else:
        answer = {"predictions": labels, "probabilities": proba}
    return _json(answer)


async def predict_async(request: HttpRequest) -> HttpResponse:
    """The same on the event loop, for Django's ASGI handler (a sync view
    there would cost a thread hop more)."""
    return predict(request)
