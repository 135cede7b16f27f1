"""A test job type with an open-ended config (search, templates, export)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rest_framework import serializers

from jobs import registry

ACCOUNT = "test.account"


class AccountConfig(serializers.Serializer):
    account_id = serializers.JSONField(required=False, allow_null=True, default=None)
    region = serializers.CharField(required=False, default="eu")
    db = serializers.DictField(required=False, default=dict)
    token = serializers.CharField(required=False, allow_blank=True, default="")


class Account(registry.JobType):
    name = ACCOUNT
    config_serializer = AccountConfig
    secret_fields = ("token",)

    def run(self, ctx):
        return {"account": ctx.config["account_id"]}


@contextmanager
def account_type() -> Iterator[type[registry.JobType]]:
    registry.register(Account)
    try:
        yield Account
    finally:
        registry.unregister(ACCOUNT)
