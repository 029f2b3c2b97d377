from django.contrib import admin

from chat.models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("slug", "is_private", "created_at")
    list_filter = ("is_private",)
    search_fields = ("slug",)
    filter_horizontal = ("members",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "user", "sent_at")
    list_filter = ("room",)
    raw_id_fields = ("room", "user")
