"""Errors of the SIP engine: our own faults (local) kept apart from a peer's (remote)."""


class SipError(Exception):
    """Base of every error the SIP engine raises."""


class LocalProtocolError(SipError):
    """We were asked to do something the protocol does not allow (a bug or bad configuration)."""


class RemoteProtocolError(SipError):
    """A peer sent something we cannot accept."""


class SipParseError(RemoteProtocolError):
    """A datagram is not a SIP message we can read."""


class MessageTooLarge(SipParseError):
    """A datagram or one of its parts is over our limits."""


class RegistrationError(SipError):
    """The registrar refused us (wrong credentials, forbidden) or never answered."""


class CallError(SipError):
    """A call could not be set up or was used after it ended."""
