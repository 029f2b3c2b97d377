from django.contrib import admin

from chat.models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("slug", "created_at")
    search_fields = ("slug",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "user", "sent_at")
    list_filter = ("room",)
    raw_id_fields = ("room", "user")
