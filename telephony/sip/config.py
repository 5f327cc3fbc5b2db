"""What the SIP engine needs to know: its own addresses, its account, its limits."""

from dataclasses import dataclass, field

from telephony.sip.transaction import TimerConfig
from telephony.sip.uri import SipUri, parse_uri


@dataclass(frozen=True)
class SipAccount:
    """Who we are. Without a registrar, calls go straight to the target's host."""

    user: str = "ringback"
    password: str | None = None
    domain: str | None = None  # defaults to the registrar's host, else our own address
    registrar: str | None = None  # "host[:port]": REGISTER there and send calls through it
    auth_user: str | None = None  # when the digest user name differs from `user`
    display_name: str | None = None

    @property
    def registrar_uri(self) -> SipUri | None:
        if not self.registrar:
            return None
        text = self.registrar if self.registrar.startswith("sip") else f"sip:{self.registrar}"
        return parse_uri(text)


@dataclass(frozen=True)
class EngineConfig:
    local_host: str = "127.0.0.1"  # bound, for SIP (UDP and TCP) and RTP
    public_host: str | None = None  # advertised in Via, Contact and SDP; default: local_host
    sip_port: int = 5060  # 0: any free port
    rtp_ports: tuple[int, int] = (20000, 29999)
    register_expires: int = 300
    register_retry_max_s: float = 30.0  # retries after a failed REGISTER: 1 s, doubling to this
    register_auth_retry_s: float = 60.0  # the retry interval once our credentials were refused
    max_pending_incoming: int = 64
    user_agent: str = "ringback/0.1"
    timers: TimerConfig = field(default_factory=TimerConfig)
