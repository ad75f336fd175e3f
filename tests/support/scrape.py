"""Reading a Prometheus exposition as Prometheus would: every sample by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of the exposition `text`, by name and labels, as prometheus-client's
    parser reads it."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    """The sample `name` with exactly `labels`, or None if there is none."""
    return found.get((name, tuple(sorted(labels.items()))))
