"""Per-room offsets and epochs (recovery). Existing messages are numbered 1, 2, …
in id order within their room, and each room's last_offset set to match."""

import chat.models
from django.db import migrations, models


def number_existing_messages(apps, schema_editor):
    Room = apps.get_model("chat", "Room")
    Message = apps.get_model("chat", "Message")
    for room in Room.objects.all():
        offset = 0
        for message in Message.objects.filter(room=room).order_by("id"):
            offset += 1
            message.offset = offset
            message.save(update_fields=["offset"])
        room.last_offset = offset
        room.epoch = chat.models.new_epoch()
        room.save(update_fields=["last_offset", "epoch"])


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]

    operations = [
        migrations.AddField("room", "epoch", models.CharField(default=chat.models.new_epoch, max_length=16)),
        migrations.AddField("room", "last_offset", models.BigIntegerField(default=0)),
        migrations.AddField("message", "offset", models.BigIntegerField(default=0), preserve_default=False),
        migrations.RunPython(number_existing_messages, migrations.RunPython.noop),
        migrations.AddConstraint(
            "message", models.UniqueConstraint(fields=("room", "offset"), name="chat_message_room_offset")
        ),
    ]
