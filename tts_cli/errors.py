"""What can go wrong for a user of the CLI, each kind with its own exit code (documented in README.md)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BAD_INPUT = 2  # also Click's code for a bad command line
    AUTH = 3
    NOT_FOUND = 4
    NOT_READY = 5
    TASK_FAILED = 6
    SERVER = 7  # a 5xx, a throttle, or no answer at all
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class CliError(Exception):
    """An expected failure: one line for the user and the exit code of its kind; never a traceback."""

    exit_code: ExitCode = ExitCode.SERVER

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(CliError):
    exit_code = ExitCode.BAD_INPUT


class AuthFailed(CliError):
    exit_code = ExitCode.AUTH


class NotFound(CliError):
    exit_code = ExitCode.NOT_FOUND


class NotReady(CliError):
    exit_code = ExitCode.NOT_READY


class TaskFailed(CliError):
    exit_code = ExitCode.TASK_FAILED


class ServerError(CliError):
    exit_code = ExitCode.SERVER
