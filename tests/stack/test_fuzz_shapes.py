"""Structure-aware fuzzing through nginx (issue #16): the shapes that matter, not random bytes.

Hypothesis generates deeply nested, huge, duplicate-key, surrogate-bearing and
number-edge JSON, invalid UTF-8, frames split into fragments at every
boundary (inside multi-byte characters too), and handshakes on unknown and
malformed paths and query strings with oversized and odd headers. Against a
real stack (daphne and uvicorn workers): no socket is closed with 1011, no
handshake or ``/healthz`` answer is a 5xx, no worker logs a traceback, the
workers' memory stays within 10%. The counts go to the terminal summary and
``var/test-output/reliability.txt`` (docs/security.md quotes them).
"""

import collections
import json
import socket
import struct
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatus
from websockets.frames import Opcode

from tests.clients import HttpProbe, RawSocket
from tests.stack.test_fuzz import rss, worker_pids

CONNECTIONS = 100
HANDSHAKES = 250
MAX_FRAME = 60_000  # under WEBSOCKET_MAX_MESSAGE_BYTES (64 KiB), so the shapes reach the application


def nested(depth, kind):
    """JSON nested ``depth`` deep: arrays, objects, or the body of a message frame."""
    if kind == "arrays":
        return "[" * depth + "]" * depth
    if kind == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"type": "message", "body": ' + "[" * depth + "]" * depth + "}"


deep_json = st.builds(nested, st.integers(200, 29_000), st.sampled_from(["arrays", "objects", "body"]))

escape = st.sampled_from(["\\ud800", "\\udfff", "\\udbff\\udbff", "\\u0000", "\\ud83d\\ude00", "\\uFFFF", "\\"])
surrogate_json = st.builds(
    lambda field, before, esc, after: json.dumps({"type": "message", field: before})[:-2] + esc + after + '"}',
    st.sampled_from(["body", "type"]), st.text(max_size=20), escape, st.text(max_size=20))

numbers = st.sampled_from(["1e309", "-1e309", "-0", "1e-400", "9" * 5000, "-" + "9" * 5000, "0x10", "NaN",
                           "Infinity", "-Infinity", "1.0e+", "00", "1_000"])
number_json = st.builds(lambda key, number: '{"type": "message", "%s": %s}' % (key, number),
                        st.sampled_from(["body", "type", "after"]), numbers)

duplicate_keys = st.builds(
    lambda first, second: '{"type": "%s", "body": "x", "type": "%s", "body": %s}' % (first, second, json.dumps("y")),
    st.sampled_from(["message", "presence", "other"]), st.sampled_from(["message", "presence", "other"]))

huge_bodies = st.builds(lambda n, char: json.dumps({"type": "message", "body": char * n}, ensure_ascii=False),
                        st.integers(1990, 2010) | st.integers(10_000, 14_000), st.sampled_from(["x", "é", "😀", " "]))

text_shapes = st.one_of(deep_json, surrogate_json, number_json, duplicate_keys, huge_bodies,
                        st.just('{"type": "presence"}'), st.just('{"type": "message", "body": "plain"}'))


def whole(text):
    data = text.encode("utf-8", "surrogatepass")
    return [(Opcode.TEXT, data[:MAX_FRAME], True)]


def fragments(text_and_cuts):
    """One message as a TEXT frame and CONT frames, cut at the given byte positions (inside characters too)."""
    text, cuts = text_and_cuts
    data = text.encode("utf-8", "surrogatepass")[:MAX_FRAME]
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in zip(points, points[1:])] or [b""]
    return [(Opcode.TEXT if i == 0 else Opcode.CONT, piece, i == len(pieces) - 1) for i, piece in enumerate(pieces)]


invalid_utf8 = st.binary(min_size=1, max_size=64).filter(lambda b: not _is_utf8(b)).map(
    lambda b: [(Opcode.TEXT, b, True)])


def _is_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


messages = st.one_of(
    text_shapes.map(whole),
    st.tuples(text_shapes, st.lists(st.integers(0, MAX_FRAME), min_size=1, max_size=6)).map(fragments),
)
# A connection's messages; one in four ends with invalid UTF-8 (the server closes it with 1007), so the
# other shapes reach the application first.
batches = st.tuples(st.lists(messages, min_size=5, max_size=25), st.integers(0, 3), invalid_utf8).map(
    lambda t: t[0] + [t[2]] if t[1] == 0 else t[0])

# Handshakes: paths (unknown, malformed, over-long room names), query strings and headers.
paths = st.one_of(
    # A real room, so the consumer itself parses the fuzzed query strings (after, epoch).
    st.just("/ws/chat/shapes-query/"),
    st.sampled_from(["/ws/", "/ws/nothing/", "/ws/chat/", "/ws/chat//", "/ws/chat/a/b/", "/ws/chat/%00/",
                     "/ws/chat/%ff%fe/", "/ws/chat/..%2f..%2f/", "/ws/chat/" + "r" * 65 + "/", "/ws/chat/%F0%9F%98%80/",
                     "/ws/switchyard/ops/", "/ws/chat/lobby", "/ws/chat/lobby/extra"]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="?#% "), max_size=80)
    .map(lambda t: "/ws/" + t),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(["after=-1", "after=abc", "after=" + "9" * 5000, "after=1e9", "after=%00", "epoch=%ff",
                     "epoch=" + "e" * 3000, "after=1&after=2", "after", "&&&", "after=٣"]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="# "), max_size=200),
)
odd_headers = st.lists(st.sampled_from([
    ("Cookie", "sessionid=" + "x" * 3000),
    ("Cookie", "sessionid=\x7f"),
    ("Origin", "null"),
    ("Origin", "http://127.0.0.1:1\x01"),
    ("Sec-WebSocket-Protocol", "chat, " + "p" * 500),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=99"),
    ("X-Forwarded-For", "not-an-address"),
    ("Host", "evil.example"),
    ("X-Long", "h" * 6000),
]), max_size=3)


def handshake(base_url, path, query, headers, cookie):
    """Send one WebSocket handshake request by hand; return the HTTP status (int), or None if nginx closed it."""
    host, port = base_url.split("//")[1].split(":")
    lines = [f"GET {path}{'?' + query if query else ''} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             f"Origin: {base_url}", f"Cookie: {cookie}"]
    names = {name.lower() for name, _ in headers}
    lines = [line for line in lines if line.split(":")[0].lower() not in names or line.startswith("GET")]
    lines += [f"{name}: {value}" for name, value in headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = conn.recv(4096)
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer.split(b" ", 2)[1])


def send_all(raw, frames):
    from websockets.frames import Frame

    for opcode, payload, fin in frames:
        raw.protocol.send_frame(Frame(opcode, payload, fin=fin))
    raw._flush()


def test_structured_fuzz_gets_no_1011_no_5xx_no_traceback(stack, base_url, login, report):
    fuzzer = login("fuzzer")
    cookie = fuzzer.cookie_header()
    pids = worker_pids(stack)
    logs = sorted(stack.log_dir.glob("asgi-*.log"))
    log_sizes = {log: log.stat().st_size for log in logs}
    close_codes = collections.Counter()
    statuses = collections.Counter()
    counts = {"messages": 0, "frames": 0}

    def one_connection(batch, room):
        try:
            raw = RawSocket(base_url, room, cookie, timeout=5)
        except InvalidStatus as refused:  # e.g. nginx's handshake rate limit (429): an answer, judged below
            statuses[refused.response.status_code] += 1
            return
        try:
            for frames in batch:
                send_all(raw, frames)
                counts["messages"] += 1
                counts["frames"] += len(frames)
            raw.send_frame(Opcode.CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass  # the server closed first; its code is read below
        close_codes[raw.close_code()] += 1

    for i in range(10):  # warm both workers up before the memory baseline
        one_connection([[(Opcode.TEXT, b'{"type": "presence"}', True)]] * 3, f"shapes-warm-{i}")
    time.sleep(1)
    baseline = rss(pids.values())
    prober = HttpProbe([f"{base_url}/healthz"])
    prober.start()
    rooms = iter(range(10**9))
    try:
        @settings(max_examples=CONNECTIONS, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(batches)
        def fuzz_frames(batch):
            one_connection(batch, f"shapes-{next(rooms) % 8}")

        @settings(max_examples=HANDSHAKES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(paths, queries, odd_headers)
        def fuzz_handshakes(path, query, headers):
            statuses[handshake(base_url, path, query, headers, cookie)] += 1

        fuzz_frames()
        fuzz_handshakes()
    finally:
        prober.stop()
    time.sleep(2)
    after = rss(pids.values())
    written = ""
    for log in logs:
        with open(log, errors="replace") as handle:
            handle.seek(log_sizes[log])
            written += handle.read()
    health_5xx = prober.count(lambda status: status >= 500)
    report(f"structured fuzz: messages={counts['messages']} frames={counts['frames']} "
           f"connections={sum(close_codes.values())} close_codes={dict(sorted(close_codes.items()))} "
           f"handshakes={sum(statuses.values())} statuses={dict(sorted(statuses.items(), key=str))} "
           f"healthz_probes={len(prober.statuses)} healthz_5xx={health_5xx} worker_rss_ratio={after / baseline:.3f}")
    assert counts["messages"] >= 700 and sum(close_codes.values()) >= CONNECTIONS
    assert close_codes[1000] >= CONNECTIONS // 2  # most connections carried all their shapes and closed normally
    assert 1011 not in close_codes, close_codes
    assert not [status for status in statuses if status is not None and status >= 500], statuses
    assert statuses[101] >= 20, statuses  # the real room's handshakes got through to the fuzzed query strings
    assert "Traceback" not in written and "Exception inside application" not in written, written[-3000:]
    assert worker_pids(stack) == pids, "a worker crashed and was restarted"
    assert health_5xx == 0 and prober.statuses
    assert after <= baseline * 1.10
