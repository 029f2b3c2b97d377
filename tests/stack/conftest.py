import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest keeps it off the network,
# which this machine does not have anyway.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# ASGI worker log lines that mean a consumer went wrong, whatever the test
# asserted: an exception escaped the application, or daphne had to kill a
# consumer that did not end after its socket closed (docs/reliability.md,
# "Channel layer receive").
# (daphne's and uvicorn's wording of an escaped exception.)
WORKER_LOG_DEFECTS = ("Exception inside application", "Exception in ASGI application",
                      "took too long to shut down and was killed")
# Fixtures of tests/stack that are a running native stack: the chat example's
# shared one, the liveboard and tutorial projects', and the Redis HA and
# sharded ones (test_redis_ha.py), the monitored one (test_metrics.py).
NATIVE_STACK_FIXTURES = ("stack", "liveboard", "tutorial", "ha_stack", "sharded_stack", "monitored")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/stack/" in str(item.fspath):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(autouse=True)
def worker_logs_stay_clean(request):
    """Fail a test that uses a native stack (any project's) if its ASGI workers logged a defect meanwhile."""
    names = [name for name in NATIVE_STACK_FIXTURES if name in request.fixturenames]
    if not names:
        yield
        return
    log_dir = request.getfixturevalue(names[0]).log_dir
    sizes = {path: path.stat().st_size for path in log_dir.glob("asgi-*.log")}
    yield
    found = []
    for path in sorted(log_dir.glob("asgi-*.log")):
        with open(path, errors="replace") as log:
            log.seek(sizes.get(path, 0))
            found += [f"{path.name}: {line.rstrip()}" for line in log if any(d in line for d in WORKER_LOG_DEFECTS)]
    assert not found, "ASGI workers logged defects during the test:\n" + "\n".join(found[:10])


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (never a downloaded browser), closed after the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
