"""docs/monitoring/: the Grafana dashboard and the alert rules name only served metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

DOCS = Path(__file__).resolve().parents[3] / "docs" / "monitoring"
NAME = re.compile(r"\bjobdeck_[a-z_]+")


@pytest.fixture
def served(db) -> set[str]:
    text = Client().get("/metrics").content.decode()
    return {family.name for family in text_string_to_metric_families(text)}


def test_the_grafana_dashboard_is_json_whose_queries_name_served_metrics(served):
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    named = {n for e in exprs for n in NAME.findall(e)}
    assert named and named <= served, named - served


def test_the_alert_rules_name_served_metrics(served):
    text = (DOCS / "alerts.yml").read_text()
    exprs = re.findall(r"expr: (.+(?:\n {10}.+)*)", text)
    assert len(exprs) == text.count("- alert:") >= 5
    named = {n for e in exprs for n in NAME.findall(e)}
    assert named and named <= served, named - served
