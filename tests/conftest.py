"""Shared fixtures. The peer fixtures start real processes (Kamailio, sipp, baresip, dumpcap)
on 127.0.0.1 with fresh ports per test and always stop them in their finalisers.

A missing peer binary is a test error with a clear message, never a silent skip:
``scripts/setup.sh`` installs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from infra.settings import DEV_OUTBOUND_SECRET
from lab.baresip import Baresip
from lab.capture import Capture
from lab.crm_receiver import CrmReceiver
from lab.kamailio import Kamailio
from lab.ports import PortBlock, allocate_ports
from lab.process import PeerError
from lab.ringback import RingbackService, survey_settings
from lab.sipp import Sipp

pytest_plugins = ["tests.conftest_db", "tests.conftest_postgres"]


class _Peer(Protocol):
    def close(self) -> None: ...


P = TypeVar("P", bound=_Peer)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or bool(rep.failed)


def _dump(title: str, text: str, limit: int = 6000) -> None:
    print(f"\n===== {title} (last {limit} chars) =====\n{text[-limit:]}")


def _construct(make: Callable[[], P]) -> P:
    """A peer object; a missing binary or module fails the test with the reason, no trace."""
    try:
        return make()
    except PeerError as exc:
        pytest.fail(str(exc), pytrace=False)


def _close_all(
    request: pytest.FixtureRequest, peers: list[P], log_of: Callable[[P], tuple[str, str]] | None
) -> None:
    """Stop every peer; after a failed test, print each one's log (title, text)."""
    failed = _failed(request)
    for peer in peers:
        peer.close()
        if failed and log_of is not None:
            _dump(*log_of(peer))


def _kamailio_log(kam: Kamailio) -> tuple[str, str]:
    return f"kamailio log {kam.log_path}", kam.log_text()


def _running_kamailio(
    request: pytest.FixtureRequest, workdir: Path, **kwargs: Any
) -> Iterator[Kamailio]:
    kam = _construct(lambda: Kamailio(workdir, **kwargs))
    try:
        kam.start()
        yield kam
    finally:
        _close_all(request, [kam], _kamailio_log)


@pytest.fixture
def kamailio(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kamailio]:
    """A running Kamailio registrar/proxy (users ringback/secret and client/clientpw)."""
    yield from _running_kamailio(request, tmp_path / "kamailio")


@pytest.fixture
def kamailio_invite_auth(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kamailio]:
    """Like ``kamailio``, but INVITEs from known users get a 407 first (WITH_INVITE_AUTH)."""
    yield from _running_kamailio(request, tmp_path / "kamailio-auth", invite_auth=True)


SippFactory = Callable[..., Sipp]
BaresipFactory = Callable[..., Baresip]
CaptureFactory = Callable[..., Capture]


@pytest.fixture
def sipp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SippFactory]:
    """``sipp(scenario, *, start=False, **Sipp kwargs) -> Sipp``.

    ``start=True`` starts it in the background (UAS) and returns once its port is bound;
    otherwise call ``.start()`` / ``.run(timeout)`` yourself. Every instance is stopped at
    teardown.
    """
    created: list[Sipp] = []

    def factory(scenario: str, *, start: bool = False, **kwargs: Any) -> Sipp:
        workdir = tmp_path / f"sipp-{len(created)}-{Path(scenario).stem}"
        peer = _construct(lambda: Sipp(scenario, workdir, **kwargs))
        created.append(peer)
        if start:
            peer.start()
        return peer

    try:
        yield factory
    finally:
        _close_all(request, created, lambda p: (f"sipp {p.name} in {p.workdir}", p.describe()))


@pytest.fixture
def baresip(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaresipFactory]:
    """``baresip(kamailio, *, start=True, wait_registered=True, **Baresip kwargs) -> Baresip``.

    Started and (unless ``register=False`` / ``wait_registered=False``) registered at the
    given Kamailio; stopped at teardown.
    """
    created: list[Baresip] = []

    def factory(
        kam: Kamailio, *, start: bool = True, wait_registered: bool = True, **kwargs: Any
    ) -> Baresip:
        workdir = tmp_path / f"baresip-{len(created)}"
        phone = _construct(lambda: Baresip(kam, workdir, **kwargs))
        created.append(phone)
        if start:
            phone.start()
            if wait_registered and phone.register:
                phone.wait_registered()
        return phone

    try:
        yield factory
    finally:
        _close_all(request, created, lambda p: (f"baresip log {p.log_path}", p.log_text()))


@pytest.fixture
def capture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaptureFactory]:
    """``capture((low, high), *, start=True, **Capture kwargs) -> Capture``: dumpcap on lo
    for ``udp portrange low-high``; stop it (SIGINT, flushed) before reading packets.
    Stopped at teardown in any case."""
    created: list[Capture] = []

    def factory(port_range: tuple[int, int], *, start: bool = True, **kwargs: Any) -> Capture:
        cap = _construct(lambda: Capture(port_range, tmp_path / f"capture-{len(created)}",
                                         **kwargs))
        created.append(cap)
        if start:
            cap.start()
        return cap

    try:
        yield factory
    finally:
        _close_all(request, created, None)


@pytest.fixture
def rtp_ports() -> Iterator[PortBlock]:
    """A block of 40 free ports for one ringback user agent's RTP range."""
    block = allocate_ports(40)
    try:
        yield block
    finally:
        block.release()


CHROMIUM = Path("/usr/bin/chromium")  # Debian's (scripts/setup.sh): no browser download


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright, one per test module (headless; no sandbox: the
    tests run as root). A missing chromium is an error naming the fix, never a skip. Not wider:
    while Playwright's sync API is up its event loop runs in this thread, and a later test's
    `asyncio.run` would fail, so the browser ends with the module that used it."""
    if not CHROMIUM.exists():
        raise PeerError(f"{CHROMIUM} is missing: run scripts/setup.sh (it installs chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own cookies): one person at one desktop-sized browser."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        context.close()


COMPANY = "Acme"  # the company the robot of the end-to-end tests speaks for
ServiceFactory = Callable[..., RingbackService]


@pytest.fixture
def crm() -> Iterator[CrmReceiver]:
    receiver = CrmReceiver(DEV_OUTBOUND_SECRET).start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def service(
    tmp_path: Path, kamailio: Kamailio, crm: CrmReceiver, request: pytest.FixtureRequest
) -> Iterator[ServiceFactory]:
    started: list[RingbackService] = []

    def factory(**env: str) -> RingbackService:
        settings = {
            **survey_settings(kamailio, company=COMPANY),
            "RINGBACK_CRM_URL": crm.url,
            **{f"RINGBACK_{name.upper()}": value for name, value in env.items()},
        }
        svc = RingbackService(tmp_path / f"ringback-{len(started)}", settings)
        started.append(svc)
        return svc.start()

    try:
        yield factory
    finally:
        for svc in started:
            svc.close()
            rep = getattr(request.node, "rep_call", None)
            if rep is None or rep.failed:
                print(f"\n===== ringback log =====\n{svc.log_text()[-8000:]}")
