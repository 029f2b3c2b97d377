"""Reading Prometheus metrics endpoints in tests: scrape, then sum samples by name and labels."""

import requests
from prometheus_client.parser import text_string_to_metric_families


def scrape(url, timeout=5):
    """GET ``url`` (a ``/metrics`` endpoint); return ``[(sample name, labels dict, value), ...]``.

    Raises ``requests.HTTPError`` for a non-2xx answer, and
    ``ValueError`` when the body is not Prometheus' text format.
    """
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(response.text) for sample in family.samples]


def total(samples, name, **labels):
    """Return the sum (float) of the samples called ``name`` whose labels include ``labels``."""
    return sum(value for sample, sample_labels, value in samples
               if sample == name and all(sample_labels.get(key) == want for key, want in labels.items()))


def scrape_all(urls):
    """Scrape every URL of ``urls``; return the samples of all of them in one list."""
    return [sample for url in urls for sample in scrape(url)]


def alert_names():
    """Return the set of alert names in ``deploy/prometheus/alerts.yml`` (what every path's Prometheus must load)."""
    from pathlib import Path

    import yaml

    rules = yaml.safe_load((Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml").read_text())
    return {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
