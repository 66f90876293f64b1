"""An always-on board over UDP when the access point goes away and comes back: the link
drops (network.WLAN reports NO_AP_FOUND, NETWORK_SHIM), the agent keeps sampling into its
outbox, rejoins with backoff (firmware/wifi.py) once the AP is back, and delivers the backlog
exactly once and in order."""
import socket
import time

import pytest

from host_tools.rig import Rig
from netutil import free_port  # noqa: E402  (tests/ on sys.path: conftest)
from test_hil import assert_nothing_lost, tally_line


def test_wifi_drop_and_rejoin_loses_nothing(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    r = Rig(tmp_path, board="virtual", speed=20000, seed=8, consent=4)
    port = free_port(socket.SOCK_DGRAM)
    try:
        r.start_board()
        r.vboard.command("wifi slow 1500")
        r.deploy(udp="127.0.0.1:%d" % port, wifi="lab:secret")
        r.start_bridge(extra=["--listen", "udp://127.0.0.1:%d" % port])
        r.wait_for(lambda m: len([x for x in m if x.get("type") == "level"]) >= 2, timeout=60,
                   what="level reports over UDP")
        boots = r.vboard.boots
        assert r.vboard.command("wifi down").startswith("ok")
        n0 = len(r.messages())
        time.sleep(6)                         # a simulated day and more without a link
        during = len(r.messages()) - n0
        assert during <= 2, "%d messages arrived with the access point down" % during
        assert r.vboard.command("wifi up").startswith("ok")
        before = r.messages()[-1]["seq"]
        # the backlog: reports sampled while the link was down arrive after the rejoin
        r.wait_for(lambda m: len([x for x in m if x["seq"] > before]) >= 8, timeout=60,
                   what="the backlog after the rejoin")
        msgs = r.messages()
        tally_line("wifi drop and rejoin", assert_nothing_lost(msgs, r.dropped_on_device()))
        assert r.vboard.boots == boots, "the board rebooted instead of rejoining"
    finally:
        r.stop()
