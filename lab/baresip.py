"""baresip 1.0 as a real softphone peer, controlled over ctrl_tcp (netstring JSON).

The config dir is generated in a temp dir: SIP on 127.0.0.1 only, audio source ``aufile``
playing a generated 8 kHz WAV, audio player ``aubridge,nil``, ``sndfile`` recording both
directions into ``snd_path``, no other audio/video modules. The account (user ``client`` by
default) registers at the Kamailio fixture with digest auth.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import struct
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.kamailio import Kamailio, require_binary
from lab.ports import HOST, PortBlock, allocate_ports, tcp_port_open, udp_port_bound
from lab.process import PeerError, PeerProcess

MODULE_PATH = Path("/usr/lib/baresip/modules")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def write_tone_wav(
    path: Path,
    seconds: float = 120.0,
    tone_seconds: float = 1.0,
    freq: float = 440.0,
    amplitude: float = 0.25,
) -> Path:
    """8 kHz 16-bit mono WAV: ``tone_seconds`` of ``freq`` then silence up to ``seconds``.

    Keep it longer than any call: baresip's ``aufile`` source hangs the call up when the
    file ends (AUDIO_ERROR "end of file", then CALL_CLOSED).
    """
    rate = 8000
    total = int(rate * seconds)
    tone = min(total, int(rate * tone_seconds))
    peak = amplitude * 32767
    samples = [round(peak * math.sin(2 * math.pi * freq * i / rate)) for i in range(tone)]
    frames = struct.pack(f"<{tone}h", *samples) + bytes(2 * (total - tone))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


class CtrlTcp:
    """A ctrl_tcp client: netstring-framed JSON commands, responses matched by token,
    events queued for :meth:`wait_event`. A reader thread owns the socket."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(0.2)
        self._lock = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []  # every event ever received, in order
        self._closed = False
        self._token = 0
        self._reader = threading.Thread(target=self._read_loop, name="ctrl_tcp", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(2.0)

    def _read_loop(self) -> None:
        buf = b""
        while not self._closed:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                length = int(buf[:colon])
                end = colon + 1 + length
                if len(buf) < end + 1:
                    break
                payload, buf = buf[colon + 1 : end], buf[end + 1 :]  # skip the ','
                self._dispatch(json.loads(payload.decode("utf-8", "replace")))
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._lock:
            if message.get("response"):
                self._responses[str(message.get("token", ""))] = message
            elif message.get("event"):
                self.events.append(message)
            self._lock.notify_all()

    def command(self, name: str, params: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """Send a command; return the response ``{"response": true, "ok": bool, "data": str}``."""
        with self._lock:
            self._token += 1
            token = f"t{self._token}"
        message: dict[str, Any] = {"command": name, "token": token}
        if params is not None:
            message["params"] = params
        data = json.dumps(message).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data + b",")
        deadline = time.monotonic() + timeout
        with self._lock:
            while token not in self._responses:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise PeerError(f"no ctrl_tcp response to {name!r} within {timeout}s")
                self._lock.wait(remaining)
            return self._responses.pop(token)

    def wait_event(
        self,
        type_: str,
        timeout: float = 10.0,
        since: int = 0,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first event of ``type_`` at index >= ``since`` in :attr:`events`; waits."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events[since:]:
                    if event.get("type") == type_ and (match is None or match(event)):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    seen = [e.get("type") for e in self.events]
                    raise PeerError(f"no baresip event {type_} within {timeout}s (seen: {seen})")
                self._lock.wait(remaining)


class Baresip:
    """A baresip softphone registered at ``kamailio`` as ``user``.

    ``answermode``: ``"auto"`` answers incoming calls at once, ``"manual"`` lets them ring
    (answer with ``command("accept")``). ``register=False`` skips REGISTER (``regint=0``).
    """

    def __init__(
        self,
        kamailio: Kamailio,
        workdir: Path | None = None,
        *,
        user: str = "client",
        password: str | None = None,
        answermode: str = "auto",
        audio_file: Path | None = None,
        audio_seconds: float = 120.0,
        register: bool = True,
        ports: PortBlock | None = None,
    ) -> None:
        if answermode not in ("auto", "manual"):
            raise ValueError("answermode must be 'auto' or 'manual'")
        self.baresip_bin = require_binary("baresip")
        if not (MODULE_PATH / "ctrl_tcp.so").exists():
            raise PeerError(f"baresip modules not found in {MODULE_PATH} (package baresip)")
        self.kamailio = kamailio
        self.user = user
        self.password = kamailio.users.get(user, "") if password is None else password
        self.answermode = answermode
        self.register = register
        self.workdir = Path(tempfile.mkdtemp(prefix="baresip-")) if workdir is None else workdir
        self.confdir = self.workdir / "conf"
        self.snd_path = self.workdir / "recordings"
        self.confdir.mkdir(parents=True, exist_ok=True)
        self.snd_path.mkdir(exist_ok=True)
        self._own_ports = ports is None
        self.ports = allocate_ports(20) if ports is None else ports
        self.sip_port = self.ports[0]
        # baresip binds SIP on UDP+TCP at sip_port and TLS at sip_port + 1: keep clear.
        self.ctrl_port = self.ports[5]
        self.rtp_range = (self.ports[10], self.ports[19])
        self.audio_file = audio_file or write_tone_wav(
            self.workdir / "source.wav", seconds=audio_seconds
        )
        self.log_path = self.workdir / "baresip.log"
        self.process: PeerProcess | None = None
        self.ctrl: CtrlTcp | None = None
        self._write_config()

    @property
    def aor(self) -> str:
        return self.kamailio.aor(self.user)

    @property
    def contact(self) -> str:
        return f"sip:{self.user}@{HOST}:{self.sip_port}"

    def _write_config(self) -> None:
        config = f"""\
# generated by lab/baresip.py
poll_method		epoll
sip_listen		{HOST}:{self.sip_port}
net_interface		{HOST}
call_local_timeout	120
call_max_calls		4
audio_player		aubridge,nil
audio_source		aufile,{self.audio_file}
audio_alert		aubridge,nil
audio_srate		8000
audio_channels		1
rtp_tos			0
rtp_ports		{self.rtp_range[0]}-{self.rtp_range[1]}
rtp_timeout		0
jitter_buffer_delay	1-5
module_path		{MODULE_PATH}
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		{HOST}:{self.ctrl_port}
snd_path		{self.snd_path}
"""
        (self.confdir / "config").write_text(config)
        params = [
            f"auth_pass={self.password}",
            f"answermode={self.answermode}",
            "audio_codecs=PCMU,PCMA",
            "ptime=20",
        ]
        if not self.register:
            params.append("regint=0")
        aor = f"<sip:{self.user}@{self.kamailio.domain}>"
        (self.confdir / "accounts").write_text(aor + ";" + ";".join(params) + "\n")
        (self.confdir / "contacts").write_text("")

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> Baresip:
        argv = [self.baresip_bin, "-f", str(self.confdir)]
        self.process = PeerProcess("baresip", argv, self.log_path, cwd=self.workdir)
        self.process.start()
        self.process.wait_ready(
            lambda: udp_port_bound(self.sip_port) and tcp_port_open(self.ctrl_port),
            timeout,
            what="SIP port and ctrl_tcp port",
        )
        self.ctrl = CtrlTcp(self.ctrl_port)
        return self

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Wait until Kamailio lists this account's contact (usrloc, ``ul.dump``)."""
        assert self.process is not None
        self.process.wait_ready(
            lambda: any(
                r["user"] == self.user and f":{self.sip_port}" in r["contact"]
                for r in self.kamailio.registrations()
            ),
            timeout,
            what=f"registration of {self.user} at Kamailio",
        )

    def registration_state(self) -> str:
        """The account's state from ``reginfo``: ``OK``, ``ERR`` or ``zzz`` (not yet / never)."""
        data = _ANSI.sub("", str(self.command("reginfo").get("data", "")))
        for line in data.splitlines():
            if self.user in line:
                words = line.replace(">", " ").split()
                return words[1] if len(words) > 1 else ""
        return ""

    def wait_registration_state(self, state: str = "OK", timeout: float = 10.0) -> None:
        """Poll ``reginfo`` until the state is ``state`` (events sent before the ctrl_tcp
        connection was made, such as an early REGISTER_FAIL, are not replayed)."""
        assert self.process is not None
        self.process.wait_ready(
            lambda: self.registration_state() == state, timeout, what=f"reginfo {state}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        if self.ctrl is not None:
            with contextlib.suppress(PeerError, OSError):
                self.ctrl.command("quit", timeout=1.0)
            self.ctrl.close()
            self.ctrl = None
        if self.process is not None:
            self.process.stop(timeout)

    def close(self) -> None:
        self.stop()
        if self._own_ports:
            self.ports.release()

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def log_text(self) -> str:
        return "" if self.process is None else self.process.log_text()

    # -- control --------------------------------------------------------------------------
    def _ctrl(self) -> CtrlTcp:
        if self.ctrl is None:
            raise PeerError("baresip is not running")
        return self.ctrl

    def command(self, name: str, params: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """A ctrl_tcp command (``dial``, ``hangup``, ``accept``, ``sndcode``, ``reginfo``,
        ``callstat``, ``listcalls``, ...); returns the response dict."""
        return self._ctrl().command(name, params, timeout)

    def dial(self, uri: str) -> dict[str, Any]:
        return self.command("dial", uri)

    def hangup(self) -> dict[str, Any]:
        return self.command("hangup")

    def send_digit(self, digit: str) -> dict[str, Any]:
        """Send one RFC 4733 digit in the current call."""
        return self.command("sndcode", digit)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._ctrl().events

    def events_so_far(self) -> int:
        """How many events came so far: `since` for waiting on the next call's events."""
        return len(self._ctrl().events)

    def wait_event(
        self,
        type_: str,
        timeout: float = 10.0,
        since: int = 0,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Wait for an event such as ``REGISTER_OK``, ``CALL_INCOMING``, ``CALL_ESTABLISHED``,
        ``CALL_CLOSED`` (each a dict with ``type``, ``class``, ``param``, ``peeruri`` ...)."""
        return self._ctrl().wait_event(type_, timeout, since, match)

    def recordings(self) -> list[Path]:
        """The WAV files sndfile wrote (one per direction per call)."""
        return sorted(self.snd_path.glob("*.wav"))
