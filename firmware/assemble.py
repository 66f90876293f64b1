"""Boot-only half of the agent: builds an Agent's parts from the board file, provisioning
and the state persisted under root (see firmware/agent.py for the files). Agent.__init__
calls parts(); firmware/main.py's boot() calls estimator() before anything else (its
rings need the heap's long free runs) and drops this module once the agent is built, so
its code, about a third of the agent's, does not stay in RAM (its qstrs do: never freed).
"""
from firmware import store


def estimator(path, board):
    """The estimator saved in the agent's checkpoint at path (firmware/agent.py), else a
    new one for the board's consumable (a missing, damaged or older checkpoint)."""
    from firmware.estimator import Estimator
    ck = store.load(path) or {}
    if ck.get("est"):
        try:
            return Estimator.restore(ck["est"])
        except (ValueError, TypeError, IndexError, KeyError):
            pass
    c = board.get("consumable", {})
    return Estimator(100 if c.get("unit", "%") == "%" else c.get("capacity", 100))


def parts(a, board, prov, root, transport, sensor, button, est, start):
    from firmware import clock, filters, geometry, hal
    from firmware.downlink import Downlink
    from firmware.outbox import Outbox
    from firmware.policy import Policy
    from firmware.scheduler import Timer
    from firmware.usage import Usage
    from protocol import messages as M
    a.dev = prov["device_id"]
    a.kid = a.dev.encode()
    a.key = prov["key_bytes"]
    sd = root + "state"
    store.makedirs(sd)
    a._est_path = sd + "/est.json"
    a._cfg_path = sd + "/config.json"
    item = board.get("consumable", {})
    cap = float(item.get("capacity", 100))
    if item.get("unit", "%") == "%":
        cap = 100.0
    a.capacity = cap
    # the estimator: main.boot() builds it before anything else (see there)
    a.est = est if est is not None else estimator(a._est_path, board)
    ck = store.load(a._est_path) or {}
    # config: board defaults, then what config downlinks stored
    pw = board.get("power", {})
    pol = board.get("policy", {})
    rs = pw.get("report_s", 3600)
    a.cfg = {"sample_s": pw.get("sample_s", 600), "report_s": rs,
             "near_empty_report_s": pol.get("near_empty_report_s", max(1, rs // 4)),
             "lead_time_h": pol.get("lead_time_h", 72), "margin_h": pol.get("margin_h", 24),
             "low_pct": pol.get("low_pct", 20)}
    saved = store.load(a._cfg_path)
    if saved:
        a.cfg.update(saved)
    a.deep = pw.get("mode") == "deep_sleep"
    # the measuring chain
    if sensor is None:
        from firmware import sensors
        sensor = sensors.build(board)
        if button is None:
            button = sensors.build_button(board)
    a.sensor = sensor
    a.button = button
    sensor.setup()
    a.geom = geometry.from_board(board)
    a.chain = filters.build(board.get("filters", []), cap)
    a.usage = Usage(ck.get("use"))
    if ck.get("off") is not None:
        clock.set_offset(ck["off"])
    mem = board.get("outbox", {})
    a.outbox = Outbox(root + "outbox", mem.get("max_count", 32), mem.get("max_bytes", 4096),
                     mem.get("reserve", 8), mem.get("reserve_bytes", 1024),
                     mem.get("timeout_ms", 4000), mem.get("max_timeout_ms", 120000),
                     prov.get("consent", M.CONSENT_ORDER_ONLY))
    a.policy = Policy(a.dev, item, a.cfg, a._emit, sd + "/policy.json",
                     prov.get("consent", M.CONSENT_ORDER_ONLY))
    a.outbox.set_consent(a.policy.consent)
    a.downlink = Downlink(a.key, sd + "/dl.json", a)
    if transport is None:
        from firmware import transport as tr
        transport = tr.open(prov, board)
    a.tr = transport
    a.report = Timer(a.cfg["report_s"], ck.get("rep"))
    a.sample = Timer(a.cfg["sample_s"])
    a.fails = 0
    a.cycles = 0
    a.last = None        # (remaining, fill_pct, tte) of the last estimate, for logs
    wd = pw.get("wdt_ms", 30000)
    a.wdt = hal.WDT(0, wd) if wd else None
    a.woke = hal.reset_cause() == hal.DEEPSLEEP_RESET
    a._boot_path = sd + "/boot.json"
    if start:
        hello(a, board.get("name", "?"))


def hello(a, name):
    """Count the boot and queue the hello (not after a deep-sleep wake). main.boot() calls
    this once the board file and the sensor builders are freed: at a 64 KB heap's peak,
    encoding and storing the hello needs that room."""
    from firmware import agent
    b = store.load(a._boot_path) or {}
    a.boot = b.get("n", 0)
    if not a.woke:
        a.boot += 1
        a._try(store.save, a._boot_path, {"n": a.boot})
        a._try(a.policy.hello, agent.FW, name, a.boot)
