"""What every part of the user agent shares: the endpoint, who we are, and the live dialogs."""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol

from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.endpoint import Address, SipEndpoint, random_token
from telephony.sip.errors import CallError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response, make_response
from telephony.sip.transaction import ServerTransaction
from telephony.sip.uri import SipUri, bare_host, is_tel_uri, parse_uri

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"  # NOTIFY: of our REFERs
RESOLVE_TIMEOUT_S = 5.0

DialogKey = tuple[str, str, str]  # Call-ID, local tag, remote tag


def dial_target(template: str, phone: str) -> str:
    """What a dial template (`RINGBACK_SIP_DIAL_TEMPLATE`) makes of a phone number: `{phone}`
    as given, `{digits}` without its `+`."""
    return template.format(phone=phone, digits=phone.lstrip("+"))


class DialogUser(Protocol):
    """Whoever owns a confirmed dialog: gets its requests and retransmitted 2xx responses."""

    def handle_request(self, request: Request, transaction: ServerTransaction | None) -> None: ...

    def handle_2xx_retransmission(self, response: Response) -> None: ...


@dataclass
class Stack:
    """The shared context of one user agent; built by `SipUserAgent`, used by its parts."""

    endpoint: SipEndpoint
    account: SipAccount
    config: EngineConfig

    def __post_init__(self) -> None:
        self.dialogs: dict[DialogKey, DialogUser] = {}
        self.inviting: set[str] = set()  # Call-IDs of our INVITEs still waiting for a final

    @property
    def domain(self) -> str:
        if self.account.domain:
            return self.account.domain
        registrar = self.account.registrar_uri
        if registrar is None:
            return self._host_for_uri()
        # The registrar's own port belongs to the domain: it must recognise the URI as its own.
        return registrar.host + (f":{registrar.port}" if registrar.port else "")

    @property
    def contact(self) -> str:
        return f"<sip:{self.account.user}@{self._host_for_uri()}:{self.endpoint.port}>"

    def local_address(self, caller_id: str | None = None) -> str:
        """Our From value (without tag); `caller_id` replaces the user part when given."""
        user = caller_id or self.account.user
        display = f'"{self.account.display_name}" ' if self.account.display_name else ""
        return f"{display}<sip:{user}@{self.domain}>"

    def target_uri(self, target: str) -> SipUri:
        """`sip:user@host`, `user@host` or a bare user / number (then at our domain). A `tel:`
        URI names no host: the service turns its number into a target with the dial template."""
        text = target.strip()
        if is_tel_uri(text):
            raise CallError(f"{text!r} has no host to call: dial its number through the dial "
                            "template (RINGBACK_SIP_DIAL_TEMPLATE)")
        if not text.lower().startswith(("sip:", "sips:")):
            text = "sip:" + (text if "@" in text else f"{text}@{self.domain}")
        return parse_uri(text)

    def outbound_hop(self, target: SipUri) -> SipUri:
        """Initial requests go through the registrar when there is one, else to the target."""
        return self.account.registrar_uri or target

    def new_request(self, method: str, uri: str, from_: str, to: str, cseq: int) -> Request:
        headers = Headers()
        headers.add("Via", self.endpoint.via())
        headers.add("Max-Forwards", "70")
        headers.add("From", from_)
        headers.add("To", to)
        headers.add("Call-ID", f"{random_token(16)}@{self._host_for_uri()}")
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("User-Agent", self.config.user_agent)
        return Request(headers=headers, body=b"", method=method, uri=uri)

    def respond(
        self,
        transaction: ServerTransaction,
        status: int,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Response:
        request = transaction.request
        extra = [("Server", self.config.user_agent), *(headers or [])]
        if request.method == "INVITE" and 100 < status < 300 and to_tag is not None:
            # RFC 3261 12.1.1: a dialog-creating response carries the Record-Route set.
            extra = [("Record-Route", route) for route in request.headers.get_all("Record-Route")]
            extra += [("Server", self.config.user_agent), *(headers or [])]
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=to_tag, headers=extra, body=body)
        self.endpoint.respond(transaction, response)
        return response

    async def resolve(self, uri: SipUri) -> Address:
        """Where to send a request for `uri`; a `;transport=tcp` URI marks it for TCP."""
        address = await self._address_of(uri)
        if (uri.params.get("transport") or "").lower() == "tcp":
            self.endpoint.mark_tcp(address)
        return address

    async def _address_of(self, uri: SipUri) -> Address:
        host, port = uri.host_port
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return host, port
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, TimeoutError) as exc:
            raise CallError(f"cannot resolve {host}: {exc}") from exc
        family_ok = [info for info in infos if info[0] == socket.AF_INET] or infos
        address = family_ok[0][4]
        return str(address[0]), int(address[1])

    def _host_for_uri(self) -> str:
        host = self.endpoint.host
        return f"[{host}]" if ":" in bare_host(host) else host
