"""HIL rigs: a virtual board by default, a real board with --port PORT --board NAME.

Each rig is the whole system a user runs: the board, the firmware deployed with
mpremote, and a bridge process forwarding to a jsonl uplink (host_tools/rig.py).
"""
import os

import pytest

from host_tools.rig import Rig


@pytest.fixture(scope="module")
def rig_factory(request, tmp_path_factory):
    rigs = []
    port = request.config.getoption("--port")
    board = request.config.getoption("--board")

    def make(name, **kw):
        kw.setdefault("speed", 20000)
        kw.setdefault("seed", 11)
        r = Rig(tmp_path_factory.mktemp(name), board=board if port else "virtual", port=port,
                heap=os.environ.get("CONSUMABLES_HEAP"), **kw)
        rigs.append(r)
        return r.start()

    yield make
    for r in rigs:
        r.stop()
