"""A fuzz run through nginx: at least 10,000 random and mutated frames, generated
by Hypothesis, over many connections. Zero worker crashes, zero 5xx on
/healthz during the run, and the workers' memory back within 10% of the start."""

import json
import time

import psutil
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Opcode

from tests.clients import HttpProbe, RawSocket

FRAMES_PER_CONNECTION = 100
# x 100 frames = 12,500 frames offered. The server closes some connections
# before their last frame (1007, 1009, 1008 for a flood); the faster it
# answers, the fewer frames those carry, and 10,000 must still be sent.
CONNECTIONS = 125

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)
frame_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "presence", "welcome", "error", "", "MESSAGE"]) | st.text(max_size=12)},
    optional={"body": json_values | st.text(max_size=3000), "after": json_values},
)


def mutate(text_and_flips):
    """Flip bytes of a valid frame: often invalid JSON, sometimes invalid UTF-8."""
    text, flips = text_and_flips
    data = bytearray(text.encode())
    for position, value in flips:
        if data:
            data[position % len(data)] = value
    return bytes(data)


frames = st.one_of(
    frame_objects.map(lambda f: (Opcode.TEXT, json.dumps(f).encode())),
    json_values.map(lambda v: (Opcode.TEXT, json.dumps(v).encode())),
    st.text(max_size=200).map(lambda t: (Opcode.TEXT, t.encode())),
    st.tuples(frame_objects.map(json.dumps), st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=4))
    .map(lambda tf: (Opcode.TEXT, mutate(tf))),
    st.binary(max_size=300).map(lambda b: (Opcode.BINARY, b)),
)


def worker_pids(stack):
    return {port: int(stack.ctl("pid", f"asgi:asgi-{port}").stdout) for port in stack.config.asgi_ports}


def rss(pids):
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


def test_fuzz_frames_crash_nothing_and_leak_nothing(stack, base_url, login, report):
    fuzzer = login("fuzzer")
    cookie = fuzzer.cookie_header()
    pids = worker_pids(stack)
    sent = {"frames": 0, "connections": 0, "closed_early": 0}

    def blast(batch, room):
        try:
            raw = RawSocket(base_url, room, cookie, timeout=5)
        except Exception:  # noqa: BLE001 - a refused handshake (rate limit) is an outcome, not a failure
            return
        sent["connections"] += 1
        try:
            for opcode, payload in batch:
                raw.send_frame(opcode, payload)
                sent["frames"] += 1
        except OSError:
            sent["closed_early"] += 1  # the server closed it (1007, 1002, 1008, 1009): fine
        raw.sock.close()

    # Warm up both workers (imports, caches, pools) before the memory baseline.
    for i in range(20):
        blast([(Opcode.TEXT, b'{"type": "presence"}')] * 5, f"fuzz-warm-{i}")
    time.sleep(1)
    baseline = rss(pids.values())

    prober = HttpProbe([f"{base_url}/healthz"])
    prober.start()
    counter = iter(range(10**9))

    @settings(max_examples=CONNECTIONS, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(frames, min_size=FRAMES_PER_CONNECTION, max_size=FRAMES_PER_CONNECTION))
    def fuzz(batch):
        blast(batch, f"fuzz-{next(counter) % 10}")

    try:
        fuzz()
    finally:
        prober.stop()
    time.sleep(3)  # let closing sockets finish
    after = rss(pids.values())
    health = {"probes": len(prober.statuses), "5xx": prober.count(lambda status: status >= 500)}
    report(f"fuzz: frames={sent['frames']} connections={sent['connections']} closed_early={sent['closed_early']} "
           f"healthz_probes={health['probes']} healthz_5xx={health['5xx']} worker_rss_start={baseline // 1024}KiB "
           f"worker_rss_end={after // 1024}KiB ratio={after / baseline:.3f}")
    assert sent["frames"] >= 10_000
    assert worker_pids(stack) == pids, "a worker crashed and was restarted"
    assert health["5xx"] == 0 and health["probes"] > 0
    assert after <= baseline * 1.10
