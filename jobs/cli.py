"""What the management commands share: argument helpers, one readable line for bad input,
global options accepted anywhere, `--json` output, and no INFO log noise on stderr.

`ActionCommand` is the base of `manage.py jobs`, `schedules` and `releases`: a command of
actions (`jobs list`, `releases apply web 2`) whose global options `--json` and `--user`
go before or after the action, alike in all three.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from jobs.exceptions import JobError, one_line


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


def job_id_list(value: str) -> list[int]:
    """An argparse type: comma-separated job ids (`12,13`), at least one."""
    parts = [part.strip() for part in value.split(",")]
    if not value.strip() or any(not part.isdigit() or int(part) < 1 for part in parts):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a comma-separated list of job ids (e.g. 12,13)"
        )
    return list(dict.fromkeys(int(part) for part in parts))


def json_object(value: str) -> dict:
    """An argparse type: a JSON object."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"malformed JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("the config must be a JSON object")
    return data


# --- global options, before or after the action ------------------------------------------


def add_global_options(parser: argparse.ArgumentParser, *, in_action: bool = False) -> None:
    """`--json` and `--user NAME`, on the command's parser and again on each action's.

    An action's parser uses SUPPRESS as default, so an option given only before the
    action is not overwritten by the action parser's default (argparse copies every
    attribute an action parser sets onto the command's namespace).
    """
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if in_action else {}
    parser.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output (JSON; JSON Lines for log lines)",
        **default,
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="act as this username (recorded in the audit trail)",
        **default,
    )


class ActionParser(OneLineParser):
    """An action's parser: one-line errors, and the command's global options again."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        add_global_options(self, in_action=True)


@contextmanager
def quiet_info_logging(verbosity: int) -> Iterator[None]:
    """Hide INFO log records (warnings and errors still show) unless `-v 2` or more.

    A command's result is what it prints. Logging is for the server's logs: creating a
    job enqueues its wake-up, and django-q2 logs "Enqueued [jobdeck] 12" for it, the
    release services log each job they queue; on a command's stderr that is noise.
    django-q2's own logger has no level of its own (it defers to the root's) unless
    Q_CLUSTER sets one, so both are raised.
    """
    loggers = [logging.getLogger(), logging.getLogger("django-q")]
    previous = [lg.level for lg in loggers]
    if verbosity < 2:
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, previous, strict=True):
            lg.setLevel(level)


def job_json(job) -> dict[str, Any]:
    """A job as `--json` prints it, in every command (`jobs status`, `releases apply`…)."""
    return {
        "id": job.pk,
        "job_type": job.job_type,
        "status": job.status,
        "queue": job.queue,
        "progress": job.progress,
        "progress_done": job.progress_done,
        "progress_total": job.progress_total,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "timeout_seconds": job.timeout_seconds,
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_seconds": job.duration_seconds,
        "error": job.error.split("\n\n", 1)[0] if job.error else "",
        "tags": job.tags,
    }


class ActionCommand(BaseCommand):
    """A command of actions: `handle` runs `do_<action>(options)`.

    Subclasses declare their actions in `add_actions(sub)`; `self.as_json` and
    `self.user` (a User or None) are set from the global options; `emit(data, text)`
    prints one or the other. Django's ValidationError, a refusal (PermissionDenied) and
    Jobdeck's domain errors become one readable line (CommandError: exit 1).
    """

    as_json: bool = False
    user: Any = None

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # BaseCommand always builds a CommandParser; its errors (an unknown action, an
        # option it does not know) should be one line too. OneLineParser only
        # overrides error(), so switching the instance's class is safe.
        parser.__class__ = OneLineParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        add_global_options(parser)
        sub = parser.add_subparsers(
            dest="action", required=True, metavar="ACTION", parser_class=ActionParser
        )
        self.add_actions(sub)

    def add_actions(self, sub: argparse._SubParsersAction) -> None:
        raise NotImplementedError

    def execute(self, *args: Any, **options: Any) -> Any:
        with quiet_info_logging(options.get("verbosity", 1)):
            return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        self.user = self.find_user(options.get("user"))
        try:
            getattr(self, f"do_{options['action']}")(options)
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        except (JobError, PermissionDenied) as exc:  # refused: who may run what
            raise CommandError(str(exc)) from None

    @staticmethod
    def find_user(username: str | None):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        return user

    def write_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, cls=DjangoJSONEncoder))

    def emit(self, data: Any, text: str) -> None:
        """`data` as JSON with --json, else the human line(s) `text`."""
        if self.as_json:
            self.write_json(data)
        else:
            self.stdout.write(text)
