"""Group commit (chat.commits) and the batch store under it (chat.messages.store_messages), on the test database."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat import commits, messages
from chat.models import Message, Room
from chat.protocol import ProtocolError


@pytest.mark.django_db
def test_a_batch_over_two_rooms_gets_gapless_offsets_in_its_order(alice, bob):
    messages.store_message("a", alice, "first")
    stored = messages.store_messages([("a", alice, "a2"), ("b", bob, "b1"), ("a", bob, "a3"), ("b", alice, "b2")])
    assert [(m["room"], m["offset"], m["body"], m["user"]) for m in stored] == [
        ("a", 2, "a2", "alice"), ("b", 1, "b1", "bob"), ("a", 3, "a3", "bob"), ("b", 2, "b2", "alice")]
    assert all(isinstance(m["id"], int) for m in stored)
    assert Room.objects.get(slug="a").last_offset == 3 and Room.objects.get(slug="b").last_offset == 2
    assert list(Message.objects.filter(room__slug="a").values_list("offset", flat=True)) == [1, 2, 3]


@pytest.mark.django_db
def test_a_failing_batch_stores_none_of_it(alice, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    messages.get_or_create_room("a")
    monkeypatch.setattr(Message.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        messages.store_messages([("a", alice, "x"), ("a", alice, "y")])
    assert not Message.objects.exists() and Room.objects.get(slug="a").last_offset == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_messages_that_arrive_together_share_a_commit_and_keep_their_order(alice, monkeypatch):
    batches = []
    real = messages.store_messages

    def counted(batch):
        batches.append(len(batch))
        return real(batch)

    monkeypatch.setattr(messages, "store_messages", counted)
    writer = commits.GroupCommit()
    stored = await asyncio.gather(*(writer.store("lobby", alice, f"m{n}") for n in range(60)))
    assert [m["body"] for m in stored] == [f"m{n}" for n in range(60)]
    assert [m["offset"] for m in stored] == list(range(1, 61))
    assert sum(batches) == 60 and len(batches) < 10, batches  # 60 messages, a handful of commits
    one = await writer.store("lobby", alice, "alone")  # at a low rate a batch is one message
    assert one["offset"] == 61 and batches[-1] == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_invalid_body_fails_alone_and_a_database_error_reaches_every_sender(alice, monkeypatch):
    writer = commits.GroupCommit()
    with pytest.raises(ProtocolError):
        await writer.store("lobby", alice, "")
    monkeypatch.setattr(messages, "store_messages", lambda batch: (_ for _ in ()).throw(RuntimeError("db down")))
    results = await asyncio.gather(*(writer.store("lobby", alice, f"m{n}") for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    monkeypatch.undo()
    assert (await writer.store("lobby", alice, "after"))["offset"] == 1  # the writer goes on
    assert await sync_to_async(Message.objects.count)() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_sender_that_goes_away_does_not_cancel_its_message(alice):
    writer = commits.GroupCommit()
    task = asyncio.ensure_future(writer.store("lobby", alice, "kept"))
    await asyncio.sleep(0)
    task.cancel()
    for _ in range(100):
        if await sync_to_async(Message.objects.filter(body="kept").exists)():
            break
        await asyncio.sleep(0.02)
    assert await sync_to_async(Message.objects.filter(body="kept").exists)()


@pytest.mark.django_db
def test_rooms_are_locked_in_one_order_whatever_the_batch(alice, monkeypatch):
    """Two workers' batches over the same rooms lock them in the same (sorted) order: no deadlock on PostgreSQL."""
    locked = []
    real = messages._advance
    monkeypatch.setattr(messages, "_advance", lambda slug, count: locked.append(slug) or real(slug, count))
    messages.store_messages([("b", alice, "1"), ("a", alice, "2"), ("c", alice, "3"), ("a", alice, "4")])
    assert locked == ["a", "b", "c"]
