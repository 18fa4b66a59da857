"""orjson for every JSON body DRF parses or renders (several times faster
than the standard library, and strict: NaN and Infinity are not JSON)."""

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from mlserving.errors import PayloadTooLarge


class ORJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return {}
        # DRF hands over the raw stream: enforce the body limit here, also
        # for chunked bodies that carry no Content-Length.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise PayloadTooLarge.body_over(limit)
        if not body:
            return {}
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(
                f"The body is not valid JSON: {exc.msg} at position {exc.pos}."
            ) from None


class ORJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Skip parsing the Accept header: the view always answers JSON (the
    pattern from DRF's content-negotiation docs). Used on /predict, where
    DRF's negotiation was a measurable share of the request."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
