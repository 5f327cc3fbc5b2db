"""Errors of the shared plumbing, each with a stable id the CLI and the API can show."""


class InfraError(Exception):
    code = "infra-error"


class DatabaseNotMigrated(InfraError):
    """The database schema is not the one this version of ringback expects."""

    code = "database-not-migrated"


class InvalidSettings(InfraError):
    """Settings the service cannot run with; the message names each setting, never a secret."""

    code = "invalid-settings"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class PortUnavailable(InfraError):
    """A port ringback must listen on is taken (or not ours to take)."""

    code = "port-unavailable"
