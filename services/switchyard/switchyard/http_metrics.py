"""django-prometheus' HTTP middleware with every label value bounded.

django-prometheus (2.5) labels its latency histogram with the request's raw
method, so any client could create series at will (``FOOBAR /`` through nginx
reaches gunicorn, and multi-process mode keeps every series in files). Here a
method outside HTTP's registered set is reported as ``<invalid method>``, the
value django-prometheus uses for its other method labels.
"""

from django_prometheus.middleware import PrometheusAfterMiddleware

# RFC 9110's methods and PATCH (RFC 5789): what django-prometheus labels as themselves.
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
INVALID_METHOD = "<invalid method>"


class _BoundedMethod:
    """Within the block, ``request.method`` is a bounded label value; restored after."""

    def __init__(self, request):
        self.request = request
        self.method = request.method

    def __enter__(self):
        if self.method not in KNOWN_METHODS:
            self.request.method = INVALID_METHOD

    def __exit__(self, *exc):
        self.request.method = self.method
        return False


class HttpMetricsMiddleware(PrometheusAfterMiddleware):
    """``django_prometheus.middleware.PrometheusAfterMiddleware`` that never labels a series with an unknown method."""

    def process_response(self, request, response):
        with _BoundedMethod(request):
            return super().process_response(request, response)

    def process_exception(self, request, exception):
        with _BoundedMethod(request):
            return super().process_exception(request, exception)
