from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from brokensite import raising_routing  # noqa: E402 - after Django's set-up, as the Channels tutorial does

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": URLRouter(raising_routing.websocket_urlpatterns)})
