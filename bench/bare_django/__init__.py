"""The framework ceiling for bench/speed_bench.py: a minimal Django
project whose one view does what /predict must do at the least (parse the
JSON body, build the float64 rows, call the project's runtime class, answer
the labels and probabilities as JSON), with no apps, no middleware and no
database.

Served by granian's WSGI interface (wsgi.py; models load at import), or by
uvicorn workers as ours are (serve.py and asgi.py: an async view, one
SO_REUSEPORT socket per worker). Environment: BARE_RUNTIME (sklearn or
onnx, a name of registry.runtimes.RUNTIMES) and BARE_MODELS, ``name=path``
pairs separated by commas (joblib files for sklearn, .onnx files for onnx).
"""
