"""Shared fixtures: users, API clients, and real qcluster processes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from tests.support.cluster import Cluster, cluster_env


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-pass-123")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("sam", password="sam-pass-123", is_staff=True)


@pytest.fixture
def manager(django_user_model):
    """A user holding view_all_jobs and manage_all_jobs."""
    u = django_user_model.objects.create_user("mia", password="mia-pass-123", is_staff=True)
    u.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_all_jobs", "manage_all_jobs"])
    )
    return u


@pytest.fixture
def api_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def make_cluster(transactional_db):
    """Start real qcluster processes on the test database: make_cluster(**env) → Cluster."""
    started: list[Cluster] = []

    def start(wait: bool = True, **env: str) -> Cluster:
        cluster = Cluster(cluster_env(**env), name=f"c{len(started) + 1}")
        started.append(cluster)
        if wait:
            cluster.wait_ready()
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture
def cluster(make_cluster) -> Cluster:
    return make_cluster()
