"""A deep-sleep board on the virtual board, which treats deep sleep as an ESP32 does: a
reset (RAM lost, the process ends), RTC memory kept, the button an EXT0 wake source."""
import socket
import time

import pytest

from host_tools.rig import Rig, events
from protocol import messages as M
from netutil import free_port  # noqa: E402  (tests/ on sys.path: conftest)


@pytest.fixture
def rig(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    r = Rig(tmp_path, board="virtual-deepsleep", speed=20000, seed=5, consent=4)
    r.start()
    yield r
    r.stop()


def test_wakes_keep_filters_and_a_press_wakes_the_board(rig):
    # many wakes: each one a new process (boots counts them), hello only after power-on
    rig.wait_for(lambda m: rig.vboard.boots >= 6, timeout=40, what="six deep-sleep wakes")
    msgs = rig.messages()
    hellos = [m for m in msgs if m.get("type") == "hello"]
    # deploy's own resets may say hello; a wake from deep sleep never does
    assert 1 <= len(hellos) <= 2 and rig.vboard.boots >= len(hellos) + 4, (len(hellos), rig.vboard.boots)
    levels = [m for m in msgs if m.get("type") == "level"]
    assert levels, "no level report from a deep-sleep board"
    # RAM was lost at each wake, the filter chain came back from RTC memory
    assert (rig.work / "flash" / "rtcmem").exists() is False    # RTC memory is not flash
    # the bridge answered the boot's hello with the wall clock: the checkpoint has an offset
    # (wall - now; the board's clock runs 20,000x, so only its order of magnitude is checked)
    import json
    off = json.loads((rig.work / "flash" / "state" / "est.json").read_text())["off"]
    assert off[1] is not None and 1.6e9 < off[1] < time.time() + 1, off
    # a press between wakes wakes the board and is an order request
    rig.world("button")
    rig.wait_for(lambda m: events(m, "order_request"), timeout=60, what="order request")


@pytest.fixture
def udp_rig(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("virtual board only")
    r = Rig(tmp_path, board="virtual-deepsleep", speed=20000, seed=6, consent=4)
    port = free_port(socket.SOCK_DGRAM)
    r.start_board()
    r.vboard.command("wifi slow 2500")     # association + DHCP, as an ESP32 takes
    r.deploy(udp="127.0.0.1:%d" % port, wifi="lab:secret")
    r.start_bridge(extra=["--listen", "udp://127.0.0.1:%d" % port])
    yield r
    r.stop()


def test_deep_sleep_board_delivers_over_udp_after_the_wifi_join(udp_rig):
    # Each wake starts a Wi-Fi join of 2.5 s. The frame must not be "in flight" before
    # the link is up (its ack window and retry would run out while joining, and the
    # board would sleep before it ever left): it goes when the link is up and is acked.
    r = udp_rig
    r.wait_for(lambda m: len([x for x in m if x.get("type") == "level"]) >= 2, timeout=90,
               what="two level reports over UDP from a deep-sleep board")
    assert r.vboard.boots >= 3
