"""Who may use a room: public rooms admit every signed-in user, private rooms their members.

One function for every entry point (socket, history, posting, the room page),
so the rule is written once.
"""

from chat.models import Room


def can_access(user, room_slug):
    """Return True when ``user`` (a Django user) may join, read and post in ``room_slug``.

    Anonymous users never may. A room that does not exist yet is public (it is
    created on first use). Staff do not bypass membership: a private room is
    private.
    """
    if not user.is_authenticated:
        return False
    room = Room.objects.filter(slug=room_slug).only("id", "is_private").first()
    if room is None or not room.is_private:
        return True
    return room.members.filter(pk=user.pk).exists()


def make_private(room_slug, usernames):
    """Create or turn ``room_slug`` private with ``usernames`` (iterable of str) as its members; return the room.

    Raises ``django.contrib.auth.models.User.DoesNotExist`` (the user model's)
    for an unknown username.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    room, _ = Room.objects.get_or_create(slug=room_slug)
    room.is_private = True
    room.save(update_fields=["is_private"])
    room.members.set([user_model._default_manager.get_by_natural_key(name) for name in usernames])
    return room
