import os

from django.urls import path

from bench.bare_django.views import predict, predict_async

# ASGI (serve.py) gets the async view, WSGI the plain one.
view = predict_async if os.environ.get("BARE_ASGI") == "1" else predict
urlpatterns = [path("predict", view)]
