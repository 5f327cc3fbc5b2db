"""Errors of the shared plumbing, each with a stable id the CLI and the API can show."""


class InfraError(Exception):
    code = "infra-error"


class DatabaseNotMigrated(InfraError):
    """The database schema is not the one this version of ringback expects."""

    code = "database-not-migrated"
