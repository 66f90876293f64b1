"""Boot-only half of the agent: builds an Agent's parts from the board file, provisioning
and the state persisted under root (see firmware/agent.py for the files). Agent.__init__
calls parts(); firmware/main.py's boot() calls estimator() before anything else (its
rings need the heap's long free runs), parts(), frees the board file, calls finish(), and
drops this module once the agent is built, so its code, about a third of the agent's,
does not stay in RAM (its qstrs do: never freed).
"""
from firmware import store
from firmware.compat import const


def checkpoint(root):
    """The agent's checkpoint record (firmware/agent.py), {} if there is none."""
    return store.load(root + "state/est.json") or {}


def capacity(board):
    """The consumable's full quantity in its unit; 100 for "%"."""
    c = board.get("consumable", {})
    return 100.0 if c.get("unit", "%") == "%" else float(c.get("capacity", 100))


_STATE_V = const(5)   # firmware/estimator.py's checkpoint layout (mpt_estimator.py checks)


def restore(st, e=None):
    """The estimator a checkpoint (Estimator.state() read back) describes: e (a fresh one,
    of either class) filled in when it has the checkpoint's capacity and ring length, else
    a new one of e's class (the plain one without e). ValueError for another layout (an
    older firmware's: migrate.py brings v3 and v4 to v5 first). The state array brings the
    constructor's parameters back too; a shorter one (an older v5) leaves its missing slots
    at their start. A heating fuel's checkpoint has a 13th entry: firmware/weather.py reads
    it. st's texts are dropped as they are read (a copy keeps them). Boot-only, so it
    lives here: freed after boot."""
    from binascii import a2b_base64
    from io import BytesIO
    if not st or st[0] != _STATE_V:
        raise ValueError("estimator state version")
    if e is None:
        from firmware.estimator import Estimator
        e = Estimator(st[1], nbuckets=st[2])
    elif e.capacity != st[1] or len(e._bt) != st[2]:
        e = type(e)(st[1], nbuckets=st[2])
    e._t0, e.episode, e.rejected, e.consumed = st[3:7]
    # Each array's bytes straight into it (BytesIO over bytes does not copy them, readinto
    # allocates nothing), each text dropped once read: decoded through a temporary array,
    # beside the checkpoint's 2.5 KB of text, the default board did not boot again from its
    # checkpoint in 68K (tests/host/test_memory32.py)
    for i, a in enumerate((e._s, e._bt, e._bq, e._bw, e._bg)):
        BytesIO(a2b_base64(st[7 + i])).readinto(a)
        st[7 + i] = None
    return e


def estimator(state, board, e=None):
    """The estimator from its checkpointed state, else (none, damaged or an older format)
    a new one for the board's consumable. e: a fresh one for this board, built before
    the checkpoint was read (main.boot(): its rings then take the heap's long free runs,
    the checkpoint's text goes above them), filled in. An older layout is migrated first by
    firmware/migrate.py, loaded only then. A heating fuel's (firmware/weather.py: its board
    file says consumable "weather": true, or its checkpoint is one) is loaded only then,
    and built as one from the start: built plain and converted, a boot would allocate the
    rings twice, and at 70K the second set found no room (tests/host/test_memory32.py)."""
    if board.get("consumable", {}).get("weather") or state and len(state) > 12:
        from firmware.weather import Estimator, estimator as ring
    else:
        from firmware.estimator import Estimator
        ring = None
    if not isinstance(e, Estimator):
        e = Estimator(capacity(board))
    if state:
        try:
            if state[0] in (3, 4):
                from firmware import migrate
                state = migrate.estimator(state)
            e = restore(state, e)
        except (ValueError, TypeError, IndexError, KeyError):
            state = None
            e = Estimator(capacity(board))    # (e may be half filled in: a new one)
    if ring is not None:
        e = ring(e, state)    # its own ring from the checkpoint, when there is one
    return e


def parts(a, board, prov, root, transport, sensor, button, est, ck, start):
    """The parts that need the board file. With start False (main.boot()) it stops there,
    keeping only the few board sections finish() needs, so the caller can free the board
    file before finish() builds the rest (the boot's peak); else finish() and hello() follow."""
    from firmware import clock, filters, geometry, hal
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
    cap = a.capacity = capacity(board)
    # the checkpoint and the estimator: main.boot() reads and builds them first (see there)
    if ck is None:
        ck = checkpoint(root)
    a.est = est if est is not None else estimator(ck.pop("est", None), board)
    # config: board defaults, then what config downlinks stored
    pw = board.get("power", {})
    pol = board.get("policy", {})
    rs = pw.get("report_s", 3600)
    a.cfg = {"sample_s": pw.get("sample_s", 600), "report_s": rs,
             "near_empty_report_s": pol.get("near_empty_report_s", max(1, rs // 4)),
             "lead_time_h": pol.get("lead_time_h", 72), "margin_h": pol.get("margin_h", 0),
             "low_pct": pol.get("low_pct", 20)}
    for k in ("lead_sd_h", "risk_pm"):   # defaults in policy.risk_threshold (RAM: no entry)
        if k in pol:
            a.cfg[k] = pol[k]
    saved = store.load(a._cfg_path)
    if saved:
        a.cfg.update(saved)
    a.deep = pw.get("mode") == "deep_sleep"
    a.geom = geometry.from_board(board)
    a.chain = filters.build(board.get("filters", []), cap)
    a.usage = Usage(ck.get("use"))
    # "off": clock.state() (firmware 0.3.0 kept only the wall-clock offset there, a number)
    o = ck.get("off")
    clock.restore(o if isinstance(o, list) else o is not None and (0, o, 0))
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
    # what finish() needs: small sections, not the whole board file
    a._rest = (root, item, board.get("outbox", {}), prov.get("consent", M.CONSENT_ORDER_ONLY),
               sensor, button, {"sensor": board.get("sensor"), "pins": board.get("pins", {}),
                                "button": board.get("button")})
    if start:
        finish(a)
        a.start(board.get("name", "?"))


def finish(a):
    """The sensor, the outbox, the policy and the downlink handler."""
    from firmware.downlink import Downlink
    from firmware.outbox import Outbox
    from firmware.policy import Policy
    root, item, mem, consent, sensor, button, sb = a._rest
    del a._rest
    sd = root + "state"
    if sensor is None:
        from firmware import sensors
        sensor = sensors.build(sb)
        if button is None:
            button = sensors.build_button(sb)
    a.sensor = sensor
    a.button = button
    sensor.setup()
    a.outbox = Outbox(root + "outbox", mem.get("max_count", 32), mem.get("max_bytes", 4096),
                      mem.get("reserve", 8), mem.get("reserve_bytes", 1024),
                      mem.get("timeout_ms", 4000), mem.get("max_timeout_ms", 120000), consent)
    a.policy = Policy(a.dev, item, a.cfg, a._emit, sd + "/policy.json", consent)
    a.outbox.set_consent(a.policy.consent)
    a.downlink = Downlink(a.key, sd + "/dl.json", a)
