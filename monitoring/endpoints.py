"""POST /feedback as the HTTP front answers it (mlserving/front.py), on the
event loop: a prediction still in some process's event buffer is looked
for again every POLL_SECONDS for up to FEEDBACK_WAIT, sleeping on the
loop, so a wait holds no thread (each try is one short query, in a
thread). The DRF view (views.FeedbackApi) serves the same route under
Django; both call monitoring.feedback."""

import asyncio
import time

import orjson
from channels.db import database_sync_to_async
from rest_framework.exceptions import ParseError

from mlserving.conf import experiment_settings
from mlserving.errors import NotFound
from mlserving.http import Request, Response, json_response
from monitoring import feedback
from monitoring.serializers import FeedbackRequestSerializer

_record = database_sync_to_async(feedback.feedback_record)


async def feedback_post(request: Request) -> Response:
    try:
        data = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ParseError(
            f"The body is not valid JSON: {exc.msg} at position {exc.pos}."
        ) from None
    serializer = FeedbackRequestSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    deadline = time.monotonic() + experiment_settings.FEEDBACK_WAIT
    while True:
        try:
            result = await _record(**serializer.validated_data, wait=0)
            break
        except NotFound:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(feedback.POLL_SECONDS)
    return json_response(
        201 if result.status == "recorded" else 200, feedback.feedback_dict(result)
    )
