"""Fixtures of the Ansible scenario's end-to-end tests (``-m ansible``).

These run inside Molecule's verify step (ansible/molecule/default/verify.yml,
started by ``scripts/test --ansible``), against the four converged hosts:
everything goes through lb1's nginx over HTTPS, verified against lb1's
self-signed certificate. Molecule's environment (``ANSIBLE_CONFIG``,
``MOLECULE_EPHEMERAL_DIRECTORY``) lets the tests run Ansible on the same
inventory: the test users are created with it, and ``deploy.yml`` is run under load.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients import ChatClient
from tests.conftest import CREATE_USERS, PASSWORDS

ANSIBLE_DIR = Path(__file__).resolve().parent.parent.parent / "ansible"


@dataclass
class Site:
    """The converged scenario as the tests see it.

    ``base_url``: lb1's ``https://ADDRESS``; ``verify``: path of lb1's
    certificate (the CA to trust); ``app_hosts``: inventory names of the app
    hosts; ``inventory``: Molecule's inventory directory.
    """

    base_url: str
    verify: str
    app_hosts: list
    inventory: str

    def ansible(self, command, *args, timeout=600):
        """Run ``command ARGS -i INVENTORY`` in ``ansible/`` (``command``: ``ansible`` or ``ansible-playbook``).

        Returns the ``subprocess.CompletedProcess`` (text); raises
        ``subprocess.TimeoutExpired`` after ``timeout`` seconds.
        """
        return subprocess.run([command, *args, "-i", self.inventory], cwd=ANSIBLE_DIR, capture_output=True, text=True,
                              timeout=timeout, check=False)


@pytest.fixture(scope="session")
def site():
    """The scenario, from the variables verify.yml sets; fails outside Molecule."""
    missing = [name for name in ("SWITCHYARD_LB_URL", "SWITCHYARD_LB_CA", "SWITCHYARD_APP_HOSTS",
                                 "MOLECULE_EPHEMERAL_DIRECTORY") if not os.environ.get(name)]
    if missing:
        pytest.fail(f"run these through `scripts/test --ansible` (Molecule's verify); unset: {', '.join(missing)}")
    site = Site(os.environ["SWITCHYARD_LB_URL"], os.environ["SWITCHYARD_LB_CA"],
                os.environ["SWITCHYARD_APP_HOSTS"].split(","),
                os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory"))
    created = site.ansible("ansible", site.app_hosts[0], "-m", "ansible.builtin.command",
                           "-a", json.dumps({"argv": ["switchyard-manage", "shell", "-c", CREATE_USERS]}))
    assert created.returncode == 0, created.stdout + created.stderr
    return site


@pytest.fixture
def base_url(site):
    return site.base_url


@pytest.fixture
def login(site):
    """``login(name)`` returns a signed-in :class:`ChatClient` through lb1."""

    def signed_in(name):
        return ChatClient(site.base_url, name, PASSWORDS[name], verify=site.verify).login()

    return signed_in


@pytest.fixture(autouse=True)
def trust_lb1(site, monkeypatch):
    """Plain ``requests`` calls in shared tests verify against lb1's certificate."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", site.verify)
