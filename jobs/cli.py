"""Argument helpers shared by the management commands: one readable line for bad input."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from django.core.management.base import CommandError, CommandParser


class OneLineParser(CommandParser):
    """Bad arguments give one readable line (no usage dump) and exit 2."""

    def error(self, message: str):
        if self.called_from_command_line:
            sys.stderr.write(f"{self.prog}: error: {message}\n")
            sys.exit(2)
        raise CommandError(f"Error: {message}")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value!r} must be {minimum} or more")
        return number

    parse.__name__ = f"int>={minimum}"
    return parse


non_negative_int = int_at_least(0)
positive_int = int_at_least(1)


def json_object(value: str) -> dict:
    """An argparse type: a JSON object."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"malformed JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("the config must be a JSON object")
    return data
