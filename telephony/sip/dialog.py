"""RFC 3261 §12 dialogs: the route set, the remote target, CSeq numbers and tags (sans-IO)."""

from dataclasses import dataclass, field

from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response
from telephony.sip.uri import SipUri, parse_address, parse_uri


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_address: str  # our From (UAC) or To (UAS) value, with our tag
    remote_address: str
    remote_target: SipUri
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 1
    remote_seq: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> "Dialog":
        """The dialog of an INVITE we sent, from its 2xx (or a 1xx with a To-tag)."""
        return cls.from_response(response, fallback_target=parse_uri(request.uri))

    @classmethod
    def from_response(cls, response: Response, fallback_target: SipUri) -> "Dialog":
        """Our side of a dialog from a response alone: From, Call-ID and CSeq echo our request."""
        local = response.from_address
        remote = response.to_address
        contact = response.headers.get("Contact")
        return cls(
            call_id=response.call_id,
            local_tag=local.tag or "",
            remote_tag=remote.tag or "",
            local_address=str(local),
            remote_address=str(remote),
            remote_target=parse_address(contact).uri if contact else fallback_target,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_seq=response.cseq[0],
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str) -> "Dialog":
        """The dialog of an INVITE we answer with a 2xx carrying `local_tag`."""
        remote = request.from_address
        contact = request.headers.get("Contact")
        target = parse_address(contact).uri if contact else remote.uri
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_address=str(request.to_address.with_tag(local_tag)),
            remote_address=str(remote),
            remote_target=target,
            route_set=request.headers.get_all("Record-Route"),
            local_seq=0,
            remote_seq=request.cseq[0],
        )

    def update_target(self, message: Request | Response) -> None:
        """A re-INVITE or its 2xx may move the remote target (RFC 3261 12.2)."""
        contact = message.headers.get("Contact")
        if contact:
            self.remote_target = parse_address(contact).uri

    def accepts_remote_seq(self, cseq: int) -> bool:
        """RFC 3261 12.2.2: a lower CSeq than the last one is out of order (answer 500)."""
        if self.remote_seq is not None and cseq < self.remote_seq:
            return False
        self.remote_seq = cseq
        return True

    def next_hop(self) -> SipUri:
        """Where an in-dialog request goes: the first route if any, else the remote target."""
        if self.route_set:
            return parse_address(self.route_set[0]).uri
        return self.remote_target

    def new_request(
        self,
        method: str,
        via: str,
        *,
        cseq: int | None = None,
        extra_headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Request:
        """An in-dialog request (RFC 3261 12.2.1.1), loose or strict routing."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        routes = list(self.route_set)
        request_uri = str(self.remote_target)
        if routes and not parse_address(routes[0]).uri.is_loose_router:
            request_uri = str(parse_address(routes[0]).uri)
            routes = [*routes[1:], f"<{self.remote_target}>"]
        headers = Headers()
        headers.add("Via", via)
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.local_address)
        headers.add("To", self.remote_address)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        for name, value in extra_headers or []:
            headers.add(name, value)
        return Request(headers=headers, body=body, method=method, uri=request_uri)
