"""The chat example's own HTTP response headers."""

# Scripts, styles and sockets only from this site; no framing. nginx passes a
# project's policy through and adds its default only where there is none.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class ContentSecurityPolicyMiddleware:
    """Set ``Content-Security-Policy`` (:data:`CONTENT_SECURITY_POLICY`) on every response that has none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
