"""Registration with a registrar: digest auth, refresh before expiry, recovery after an outage."""

import asyncio
import logging
from dataclasses import dataclass

from telephony.sip.digest import AuthError, authorization, choose_challenge
from telephony.sip.endpoint import random_token
from telephony.sip.errors import RegistrationError, SipParseError
from telephony.sip.message import Request, Response
from telephony.sip.stack import Stack
from telephony.sip.uri import SipUri, parse_address

REFRESH_MARGIN = 0.5  # refresh when half the granted time is gone...
MIN_REFRESH_S = 1.0
MAX_EARLY_S = 60.0  # ...but never more than a minute before expiry
FIRST_RETRY_S = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Binding:
    expires_s: int
    at: float  # loop time of the 200


def refresh_delay(granted_s: int) -> float:
    """Seconds until the next REGISTER for a binding granted for `granted_s` seconds."""
    return max(MIN_REFRESH_S, max(granted_s * REFRESH_MARGIN, granted_s - MAX_EARLY_S))


def granted_expiry(response: Response, contact_uri: SipUri, requested: int) -> int:
    """The registrar's grant for our contact: its `expires` parameter, else Expires, else ours."""
    for value in response.headers.get_all("Contact"):
        try:
            address = parse_address(value)
        except SipParseError:
            continue
        same = (address.uri.user, address.uri.host, address.uri.port) == (
            contact_uri.user, contact_uri.host, contact_uri.port)
        expires = address.params.get("expires")
        if same and expires and expires.isdigit():
            return int(expires)
    header = response.headers.get("Expires")
    return int(header) if header and header.strip().isdigit() else requested


class CredentialsRejected(RegistrationError):
    """The registrar refused our user name and password: retrying soon cannot help."""


class Registration:
    """Keeps our Contact bound at the registrar.

    `start()` raises when the first REGISTER fails (a one-shot call wants to know at once);
    `start_in_background()` never does: it keeps trying, with backoff, for as long as it runs.
    Either way, once registered the binding is refreshed and, when the registrar goes away,
    registration is retried: after 1 s, doubling up to `register_retry_max_s`, and every
    `register_auth_retry_s` while our credentials are refused. A failure is logged when its
    reason is new; repeats go to the debug log.
    """

    def __init__(self, stack: Stack) -> None:
        registrar = stack.account.registrar_uri
        if registrar is None:
            raise RegistrationError("no registrar configured")
        self._stack = stack
        self._registrar = registrar
        self._call_id = f"{random_token(16)}@{stack.endpoint.host}"
        self._from_tag = random_token(8)
        self._cseq = 0
        self._expires = stack.config.register_expires
        self.binding: Binding | None = None
        self.last_error: str | None = None
        self.registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def current(self) -> bool:
        """Whether our binding at the registrar is still within the expiry it granted."""
        binding = self.binding
        loop = asyncio.get_running_loop()
        return binding is not None and loop.time() < binding.at + binding.expires_s

    async def start(self) -> None:
        """Register once (raising RegistrationError with the reason), then keep it fresh."""
        await self._register(self._expires)
        self._task = asyncio.create_task(self._keep_fresh(self._refresh_delay()))

    def start_in_background(self) -> None:
        """Register now and keep at it; never raises: `current()` says whether we are
        registered, `last_error` why not."""
        self._task = asyncio.create_task(self._keep_fresh(0.0))

    async def stop(self) -> None:
        """Stop refreshing and remove our binding (best effort, bounded)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.binding is not None:
            try:
                await self._register(0)
            except RegistrationError as exc:
                log.info("unregister failed: %s", exc)
        self.binding = None
        self.registered.clear()

    async def _keep_fresh(self, delay: float) -> None:
        config = self._stack.config
        retry_s = FIRST_RETRY_S
        while True:
            await asyncio.sleep(delay)
            try:
                await self._register(self._expires)
            except RegistrationError as exc:
                self._lapse_if_expired()
                if isinstance(exc, CredentialsRejected):
                    delay = config.register_auth_retry_s
                else:
                    delay = retry_s
                    retry_s = min(retry_s * 2, config.register_retry_max_s)
                self._failed(exc, delay)
            else:
                retry_s = FIRST_RETRY_S
                delay = self._refresh_delay()

    def _refresh_delay(self) -> float:
        return refresh_delay(self.binding.expires_s) if self.binding else FIRST_RETRY_S

    def _lapse_if_expired(self) -> None:
        if not self.current():
            self.binding = None
            self.registered.clear()

    def _failed(self, exc: RegistrationError, delay: float) -> None:
        """One log line per new reason, at WARNING (ERROR for refused credentials)."""
        reason = str(exc)
        if reason == self.last_error:
            level = logging.DEBUG
        else:
            level = logging.ERROR if isinstance(exc, CredentialsRejected) else logging.WARNING
        self.last_error = reason
        log.log(level, "SIP registration failed, retrying in %.0f s: %s", delay, reason)

    async def _register(self, expires: int) -> None:
        stack = self._stack
        destination = await stack.resolve(self._registrar)
        authorization_header: tuple[str, str] | None = None
        for _ in range(3):  # plain, authenticated, once more on a 423 or a stale nonce
            request = self._request(expires, authorization_header)
            exchange = stack.endpoint.send_request(request, destination)
            response = await exchange.final(stack.config.timers.timeout + 1)
            if response is None:
                raise RegistrationError(f"registrar {self._registrar} does not answer")
            if 200 <= response.status < 300:
                self._accepted(response, expires)
                return
            if response.status == 423 and expires > 0:
                expires = self._min_expires(response, expires)
                continue
            sent_credentials = authorization_header is not None
            if sent_credentials and (response.status == 403 or (
                    response.status in (401, 407) and not _stale(response))):
                raise CredentialsRejected(
                    f"registrar {self._registrar} rejected the credentials of user "
                    f"{stack.account.auth_user or stack.account.user!r} "
                    f"({response.status} {response.reason})"
                )
            if response.status in (401, 407):
                authorization_header = self._answer(response, request)
                continue
            raise RegistrationError(
                f"registrar {self._registrar} refused: {response.status} {response.reason}"
            )
        raise RegistrationError(f"registrar {self._registrar} keeps challenging")

    def _request(self, expires: int, auth: tuple[str, str] | None) -> Request:
        stack = self._stack
        self._cseq += 1
        uri = f"sip:{stack.domain}"
        request = stack.new_request(
            "REGISTER", uri,
            from_=f"<sip:{stack.account.user}@{stack.domain}>;tag={self._from_tag}",
            to=f"<sip:{stack.account.user}@{stack.domain}>", cseq=self._cseq,
        )
        request.headers.set("Call-ID", self._call_id)
        request.headers.add("Contact", stack.contact)
        request.headers.add("Expires", str(expires))
        if auth is not None:
            request.headers.add(*auth)
        return request

    def _answer(self, challenge: Response, request: Request) -> tuple[str, str]:
        account = self._stack.account
        if account.password is None:
            raise CredentialsRejected(
                f"registrar {self._registrar} wants a password for user "
                f"{account.auth_user or account.user!r}; none is set")
        try:
            header, parsed = choose_challenge(challenge)
        except AuthError as exc:
            raise RegistrationError(f"cannot answer the registrar's challenge: {exc}") from exc
        value = authorization(
            parsed, method="REGISTER", uri=request.uri,
            username=account.auth_user or account.user, password=account.password,
        )
        return header, value

    def _accepted(self, response: Response, expires: int) -> None:
        loop = asyncio.get_running_loop()
        if expires == 0:
            self.binding = None
            self.registered.clear()
            return
        contact = parse_address(self._stack.contact).uri
        granted = granted_expiry(response, contact, expires)
        self.binding = Binding(granted, loop.time())
        self.last_error = None
        self.registered.set()
        log.info("registered at %s for %d s", self._registrar, granted)

    @staticmethod
    def _min_expires(response: Response, expires: int) -> int:
        value = response.headers.get("Min-Expires") or ""
        return int(value) if value.strip().isdigit() else expires * 2


def _stale(response: Response) -> bool:
    try:
        return choose_challenge(response)[1].stale
    except AuthError:
        return False

