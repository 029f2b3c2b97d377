import json

import pytest

from chat import protocol


def parse(frame):
    return protocol.parse_client_frame(json.dumps(frame) if not isinstance(frame, str) else frame)


def test_message_frame_yields_its_body():
    assert parse({"type": "message", "body": "hello"}) == ("message", "hello")


def test_presence_request():
    assert parse({"type": "presence"}) == ("presence", None)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", protocol.INVALID_JSON),
        ("", protocol.INVALID_JSON),
        ("[1, 2]", protocol.INVALID_FRAME),
        ('"message"', protocol.INVALID_FRAME),
        ('{"type": "shout", "body": "x"}', protocol.UNKNOWN_TYPE),
        ('{"body": "x"}', protocol.UNKNOWN_TYPE),
        ('{"type": "message"}', protocol.INVALID_BODY),
        ('{"type": "message", "body": 5}', protocol.INVALID_BODY),
        ('{"type": "message", "body": ""}', protocol.EMPTY_BODY),
        ('{"type": "message", "body": "  \\n "}', protocol.EMPTY_BODY),
        ("[" * 100000, protocol.INVALID_JSON),
        ("{" + '"a":{' * 5000 + "}" * 5001, protocol.INVALID_JSON),
        ('{"type": "message", "body": "\\ud800"}', protocol.INVALID_TEXT),
        ('{"type": "message", "body": "\\udc00 late"}', protocol.INVALID_TEXT),
        ('{"type": "message", "body": "x\\u0000"}', protocol.INVALID_TEXT),
        ('{"type": {"nested": [1, 2, 3]}}', protocol.UNKNOWN_TYPE),
    ],
)
def test_bad_frames_raise_their_code(text, code):
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_client_frame(text)
    assert caught.value.code == code
    assert caught.value.detail


def test_body_limit_counts_characters(settings):
    settings.CHAT_MAX_BODY_CHARS = 5
    assert parse({"type": "message", "body": "ééééé"}) == ("message", "ééééé")
    with pytest.raises(protocol.ProtocolError) as caught:
        parse({"type": "message", "body": "ééééé!"})
    assert caught.value.code == protocol.BODY_TOO_LONG
    assert "limit is 5" in caught.value.detail


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("0", 0), ("42", 42)])
def test_parse_after_accepts_ids(value, expected):
    assert protocol.parse_after(value) == expected


@pytest.mark.parametrize("value", ["-1", "x", "1.5", "9e9", "٣", "1_000", " 5 ", "+5", "9" * 5000])
def test_parse_after_rejects_the_rest(value):
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_after(value)
    assert caught.value.code == protocol.INVALID_AFTER


def test_an_unknown_type_is_shown_short_in_the_error():
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_client_frame('{"type": "' + "x" * 5000 + '"}')
    assert len(caught.value.detail) < 120
