"""The alert rules (deploy/prometheus/alerts.yml) are valid and behave as their unit tests say (promtool)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.metrics import alert_names

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def promtool(*args):
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: scripts/test installs Debian's prometheus package")
    return subprocess.run([tool, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def test_alert_rules_are_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_alert_rules_unit_tests_pass():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_and_a_runbook_entry():
    import yaml

    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    assert alerts == tested, alerts ^ tested
    operations = (RULES.parent.parent / "docs" / "operations.md").read_text()
    assert [alert for alert in sorted(alerts) if f"`{alert}`" not in operations] == []
