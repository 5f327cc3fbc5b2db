"""Demo: Kamailio + a baresip softphone on loopback, then `ringback call client --say ...`.

The softphone answers, hears the robot, and presses 4 two seconds into the call; ringback prints
one JSON line with the outcome, the digit, the SIP status and the durations.
"""

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.peers.baresip import Baresip  # noqa: E402 - the lab harness doubles as demo peers
from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ports import allocate_ports  # noqa: E402

KEY = "4"
SAY = "Hello! This is ringback, your robot assistant. Please press any key on your phone."


def press_key_when_answered(phone: Baresip) -> None:
    phone.wait_event("CALL_ESTABLISHED", 30.0)
    threading.Event().wait(2.0)
    phone.send_digit(KEY)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ringback-demo-"))
    rtp = allocate_ports(20)
    with Kamailio(workdir / "kamailio") as kamailio:
        kamailio.start()
        phone = Baresip(kamailio, workdir / "baresip")
        try:
            phone.start()
            phone.wait_registered()
            print(f"demo: Kamailio on {kamailio.domain}, softphone 'client' registered",
                  file=sys.stderr)
            presser = threading.Thread(target=press_key_when_answered, args=(phone,), daemon=True)
            presser.start()
            env = {
                **os.environ,
                "RINGBACK_SIP_REGISTRAR": kamailio.domain,
                "RINGBACK_SIP_USER": "ringback",
                "RINGBACK_SIP_PASSWORD": kamailio.users["ringback"],
                "RINGBACK_SIP_PORT": "0",
                "RINGBACK_RTP_PORT_MIN": str(rtp[0]),
                "RINGBACK_RTP_PORT_MAX": str(rtp.last),
                "RINGBACK_DATA_DIR": str(workdir / "data"),
            }
            ringback = Path(sys.executable).with_name("ringback")
            command = [str(ringback), "call", "client", "--say", SAY, "--digits", "1",
                       "--timeout", "15", *sys.argv[1:]]
            print("demo: " + " ".join(command[1:]), file=sys.stderr)
            return subprocess.run(command, env=env, timeout=120, check=False).returncode
        finally:
            phone.close()
            rtp.release()


if __name__ == "__main__":
    sys.exit(main())
