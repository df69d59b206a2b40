# The AT dialogue against the simulated modem, in memory, on both runtimes.
# The simulator engine (host_tools/vegw/modem_sim.py) is I/O-free, so the same
# scenarios the `vegw modem probe` tests use over TCP run here byte for byte.
import sys

if "host_tools/vegw" not in sys.path:
    sys.path.append("host_tools/vegw")

import asyncio
import time

import at_modem
import modem_sim
from _util import Rng

FAST = {"cmd": 300, "opt": 200, "handshake": 2000, "sim": 400, "pin": 400, "reg": 300, "poll": 20, "dial": 400}


class MemStream:
    """Stream interface over a SimModem; answers come back in random small
    chunks so lines are cut at arbitrary places."""

    def __init__(self, sim, seed=3):
        self.sim = sim
        self.out = sim.banner()
        self.ev = asyncio.Event()
        self.rng = Rng(seed)

    async def read(self, n):
        while not self.out:
            self.ev.clear()
            await self.ev.wait()
        k = 1 + self.rng.below(n if n < 20 else 20)
        data = self.out[:k]
        self.out = self.out[k:]
        return data

    async def write(self, data):
        out = self.sim.receive(data)
        if out:
            self.out += out
            self.ev.set()


def _ms():
    try:
        return time.ticks_ms()
    except AttributeError:
        return int(time.monotonic() * 1000)


def run_probe(scenario, model="sim7600", pin=None, apn=None, user="", password="", timeouts=None, guard=None,
              sim=None, want_model=None):
    sim = sim or modem_sim.SimModem(scenario, model)
    m = at_modem.Modem(MemStream(sim), model=want_model, pin=pin, apn=apn, user=user, password=password,
                       timeouts=timeouts or FAST, pin_guard=guard or at_modem.PinGuard())
    res = asyncio.run(m.probe())
    return res, sim, m


def _sent(sim, start):
    return [c for c in sim.commands if c.startswith(start)]


def test_csq_to_dbm():
    assert at_modem.csq_to_dbm(0) == -113
    assert at_modem.csq_to_dbm(1) == -111
    assert at_modem.csq_to_dbm(15) == -83
    assert at_modem.csq_to_dbm(31) == -51
    assert at_modem.csq_to_dbm(99) is None
    assert at_modem.csq_to_dbm(None) is None
    assert at_modem.csq_to_dbm(100) == -116
    assert at_modem.csq_to_dbm(191) == -25
    assert at_modem.csq_to_dbm(50) is None


def test_parse_reg_solicited_and_unsolicited():
    assert at_modem.parse_reg("+CREG: 0,1") == 1
    assert at_modem.parse_reg("+CREG: 2,5,\"00C3\",\"0012\"") == 5
    assert at_modem.parse_reg("+CREG: 3") == 3
    assert at_modem.parse_reg("+CEREG: 1,\"1A2B\",\"01A2B3C4\",7") == 1
    assert at_modem.parse_reg("+CGREG: 0,2") == 2
    assert at_modem.parse_reg("+CGREG: x,y") is None
    assert at_modem.parse_reg("garbage") is None
    assert at_modem.reg_name(5) == "roaming" and at_modem.reg_name(3) == "denied"


def test_line_splitter_bounds_and_garbage():
    s = at_modem.LineSplitter()
    s.feed(b"\x00\xff+CSQ: 1\xfe2,99\r\n\r\nOK\r")
    assert s.pop() == "+CSQ: 12,99"
    assert s.pop() == "OK"
    assert s.pop() is None
    assert s.garbage == 3
    s.feed(b"A" * 500 + b"\r\n")
    line = s.pop()
    assert len(line) == 160 and s.truncated == 340
    for i in range(12):
        s.feed(b"L%d\n" % i)
    assert s.dropped_lines == 4
    assert s.pop() == "L4"


def test_detect_model():
    assert at_modem.detect_model("SIMCOM_SIM7600E-H") == "sim7600"
    assert at_modem.detect_model("SIM7080") == "sim7080"
    assert at_modem.detect_model("A7670E-LASE") == "a7670"
    assert at_modem.detect_model("Quectel EC25") is None
    assert at_modem.detect_model(None) is None


def test_happy_path_with_apn_dials():
    res, sim, _ = run_probe("happy", apn="internet")
    assert res["sim"] == "ready"
    assert res["registered"] is True and res["reg"] == "home"
    assert res["operator"] == "One NZ"
    assert res["tech"] == "LTE"
    assert res["rssi_dbm"] == -73 and res["csq"] == 20
    assert res["rsrp"] == -90.5 and res["rsrq"] == -9.4 and res["sinr"] == 10
    assert res["imei"] == "867584030123456" and res["iccid"] == "89640123456789012345"
    assert res["model"] == "sim7600" and res["model_name"] == "SIMCOM_SIM7600E-H"
    assert res["data"] == "connect" and res["error"] is None
    assert 'AT+CGDCONT=1,"IP","internet"' in sim.commands
    assert sim.commands[-1] == "ATD*99#"
    assert _sent(sim, "AT+CPIN=") == []


def test_happy_path_without_apn_does_not_dial():
    res, sim, _ = run_probe("happy")
    assert res["registered"] is True and res["data"] is None
    assert _sent(sim, "ATD") == [] and _sent(sim, "AT+CGDCONT") == []


def test_no_sim():
    res, sim, _ = run_probe("no_sim", pin="1234", apn="internet")
    assert res["sim"] == "absent"
    assert res["registered"] is False and res["data"] is None
    assert _sent(sim, "AT+CPIN=") == [] and _sent(sim, "AT+CREG") == []


def test_pin_accepted_once():
    g = at_modem.PinGuard()
    res, sim, _ = run_probe("pin", pin="1234", guard=g)
    assert res["sim"] == "ready" and res["registered"] is True
    assert _sent(sim, "AT+CPIN=") == ['AT+CPIN="1234"']
    assert g.sent and g.result == "ok"


def test_pin_required_without_pin_sends_nothing():
    res, sim, _ = run_probe("pin")
    assert res["sim"] == "pin_required" and res["registered"] is False
    assert _sent(sim, "AT+CPIN=") == []


def test_wrong_pin_sent_once_per_boot():
    g = at_modem.PinGuard()
    sim = modem_sim.SimModem("wrong_pin")
    res, _, _ = run_probe("wrong_pin", pin="1111", guard=g, sim=sim)
    assert res["sim"] == "pin_wrong" and res["registered"] is False
    assert sim.pin_tries == 1
    # a second dialogue in the same boot (e.g. after a modem power cycle)
    sim.echo = True
    res2, _, _ = run_probe("wrong_pin", pin="1111", guard=g, sim=sim)
    assert res2["sim"] == "pin_wrong"
    assert sim.pin_tries == 1
    assert _sent(sim, "AT+CPIN=") == ['AT+CPIN="1111"']


def test_puk_required_never_gets_a_pin():
    res, sim, _ = run_probe("puk", pin="1234")
    assert res["sim"] == "puk_required"
    assert _sent(sim, "AT+CPIN=") == []


def test_malformed_pin_is_not_sent():
    res, sim, _ = run_probe("pin", pin='12"4')
    assert res["sim"] == "pin_required" and res["error"] == "pin_format"
    assert _sent(sim, "AT+CPIN=") == []


def test_no_registration():
    res, sim, _ = run_probe("no_reg", apn="internet")
    assert res["sim"] == "ready"
    assert res["registered"] is False and res["reg"] == "searching"
    assert res["rssi_dbm"] == -105
    assert res["data"] is None and _sent(sim, "ATD") == []
    assert len(_sent(sim, "AT+CEREG?")) >= 2  # it polled


def test_registration_denied_stops_early():
    t = dict(FAST)
    t["reg"] = 20000
    t0 = _ms()
    res, sim, _ = run_probe("denied", timeouts=t)
    assert res["reg"] == "denied" and res["registered"] is False
    assert len(_sent(sim, "AT+CREG?")) == 3
    assert _ms() - t0 < 5000


def test_lte_only_registers_on_cereg_alone():
    res, sim, _ = run_probe("lte_only")
    assert res["registered"] is True
    assert res["creg"] == 0 and res["cgreg"] == 0 and res["cereg"] == 1
    # SIM7080 firmware without CREG (answers ERROR) still registers
    res, sim, _ = run_probe("lte_only", model="sim7080")
    assert res["registered"] is True and res["creg"] is None and res["model"] == "sim7080"
    assert res["tech"] == "LTE-M" and res["rsrp"] == -95 and res["sinr"] == 12


def test_roaming_counts_as_registered():
    res, _, _ = run_probe("roaming")
    assert res["registered"] is True and res["reg"] == "roaming"


def test_a7670_model_and_auth_order():
    res, sim, _ = run_probe("happy", model="a7670", apn="web", user="u", password="p")
    assert res["model"] == "a7670" and res["data"] == "connect"
    assert 'AT+CGAUTH=1,1,"u","p"' in sim.commands
    res, sim, _ = run_probe("happy", model="sim7600", apn="web", user="u", password="p")
    assert 'AT+CGAUTH=1,1,"p","u"' in sim.commands


def test_apn_with_quote_is_refused():
    res, sim, _ = run_probe("happy", apn='in"ternet')
    assert res["error"] == "apn_format" and res["data"] is None
    assert _sent(sim, "AT+CGDCONT") == [] and _sent(sim, "ATD") == []


def test_signal_loss_mid_session():
    sim = modem_sim.SimModem("signal_loss")
    m = at_modem.Modem(MemStream(sim), timeouts=FAST, pin_guard=at_modem.PinGuard())

    async def go():
        r = await m.probe()
        assert r["registered"] is True and r["rssi_dbm"] == -77
        s = await m.sample_signal(0.05, interval_ms=5)
        return r, s

    r, s = asyncio.run(go())
    assert s["samples"] >= 2
    assert s["unknown"] >= 1
    assert s["min"] == -77 and s["max"] == -77 and s["avg"] == -77
    assert r["rssi_dbm"] is None and r["tech"] is None and r["rsrp"] is None
    assert r["cereg"] == 2  # the +CEREG: 2 URC was noted
    asyncio.run(m.poll_registration())
    assert r["registered"] is False and r["reg"] == "searching"


def test_silent_modem_gives_up_quickly():
    t = dict(FAST)
    t["cmd"] = 100
    t0 = _ms()
    res, sim, m = run_probe("silent", timeouts=t, apn="internet")
    took = _ms() - t0
    assert res["sim"] is None and res["registered"] is False and res["data"] is None
    assert res["error"] == "no_response"
    assert took < 2000
    assert len(sim.commands) <= 10  # a few commands and liveness ATs, then it stops


def test_dead_modem_respects_overall_deadline():
    t = dict(FAST)
    t["handshake"] = 60000
    t["cmd"] = 200
    sim = modem_sim.SimModem("dead")
    m = at_modem.Modem(MemStream(sim), timeouts=t, pin_guard=at_modem.PinGuard())
    m.set_deadline(600)
    t0 = _ms()
    res = asyncio.run(m.probe())
    took = _ms() - t0
    assert res["error"] == "no_response" and res["sim"] is None
    assert took < 1500
    assert len(sim.commands) >= 2  # it kept knocking with AT


def test_echo_on_urcs_and_garbage_do_not_change_the_answer():
    for sc in ("echo_on", "echo_off", "urc_mid", "garbage", "slow_boot"):
        res, sim, m = run_probe(sc, apn="internet")
        assert res["sim"] == "ready", sc
        assert res["registered"] is True, sc
        assert res["operator"] == "One NZ", sc
        assert res["rssi_dbm"] == -73, sc
        assert res["data"] == "connect", sc
        if sc == "echo_on":
            assert m.echo_lines > 5
        if sc == "garbage":
            assert m.lines.garbage > 0
        if sc == "urc_mid":
            assert m.urcs > 3


def test_no_carrier_on_dial():
    res, _, _ = run_probe("no_connect", apn="internet")
    assert res["registered"] is True and res["data"] is None
    assert res["error"] == "dial_no_carrier"


def test_signal_stats():
    s = at_modem.SignalStats()
    for v in (-80, None, -70, -90):
        s.add(v)
    out = s.summary()
    assert out == {"samples": 4, "unknown": 1, "min": -90, "avg": -80.0, "max": -70}
    assert at_modem.SignalStats().summary()["avg"] is None


def test_pin_not_sent_when_a_try_is_already_used():
    sim = modem_sim.SimModem("pin")
    sim.pin_tries = 1  # an earlier boot got it wrong once
    res, _, m = run_probe("pin", pin="1234", sim=sim)
    assert res["sim"] == "pin_wrong" and res["pin_tries"] == 2
    assert _sent(sim, "AT+CPIN=") == []
    assert m.guard.sent is False


def test_modem_ignoring_unknown_commands_is_not_dead():
    res, sim, m = run_probe("mute_unknown", apn="internet")
    assert res["sim"] == "ready" and res["registered"] is True and res["data"] == "connect"
    assert res["rssi_dbm"] == -73 and res["tech"] == "LTE"  # tech from +COPS AcT when CPSI is mute
    assert res["model_guessed"] is True
    assert m.unanswered == 6 and res["error"] is None  # + AT+CTZU=1 and AT+CCLK? (network time)
    assert res["clock_s"] is None


def test_sms_only_registration_is_named_not_taken_for_data():
    # issue 17.6: 27.007 stat 6/7 (registered for SMS only) read as "unknown"
    assert at_modem.reg_name(6) == "home_sms_only" and at_modem.reg_name(7) == "roaming_sms_only"
    assert at_modem.reg_name(8) == "emergency_only"
    m = at_modem.Modem(None, model="sim7600")
    m.result.update(creg=6, cgreg=0, cereg=7)
    assert m._registered() is False and m.result["reg"] == "home_sms_only"
    m.result.update(creg=6, cgreg=0, cereg=1)
    assert m._registered() is True and m.result["reg"] == "home"


def test_apn_change_reattaches_before_dialling():
    # issue 17.6: CGDCONT changed the stored context, but the bearer kept the
    # APN of the boot's attach, so ATD*99# failed until the modem re-attached
    sim = modem_sim.SimModem("happy", stored_apn="")
    res, sim, m = run_probe("happy", apn="internet", sim=sim)
    assert res["data"] == "connect" and res["apn"] == "set" and res["attach"] == "reattached"
    seq = [c for c in sim.commands if c.startswith("AT+CGDCONT") or c.startswith("AT+CGATT") or c.startswith("ATD")]
    assert seq == ["AT+CGDCONT?", 'AT+CGDCONT=1,"IP","internet"', "AT+CGATT=0", "AT+CGATT=1", "ATD*99#"]
    assert sim.pdp.attach_apn == "internet" and m.reattach_failures == 0


def test_apn_already_stored_leaves_the_attach_alone():
    # a healthy attach is not torn down on every dial (APNs compare case-blind)
    sim = modem_sim.SimModem("happy", stored_apn="INTERNET")
    res, sim, _ = run_probe("happy", apn="internet", sim=sim)
    assert res["data"] == "connect" and res["apn"] == "kept" and res.get("attach") is None
    assert _sent(sim, "AT+CGDCONT=") == [] and _sent(sim, "AT+CGATT") == []
    assert sim.pdp.attaches == 1  # only the power-up attach


def test_refused_reattach_is_counted_and_named():
    sim = modem_sim.SimModem("apn_rejected", stored_apn="")
    logged = []
    m = at_modem.Modem(MemStream(sim), apn="internet", timeouts=FAST, pin_guard=at_modem.PinGuard())
    m.log = lambda d, t: logged.append((d, t))
    res = asyncio.run(m.probe())
    assert m.reattach_failures == 1 and res["attach"] == "failed_cme_148"
    assert [t for d, t in logged if d == "!"] == ["re-attach after APN change failed: AT+CGATT=1 -> CME 148"]
    assert res["registered"] is True and res["data"] is None and res["error"] == "dial_no_carrier"


def test_simulated_bearer_follows_attach_not_cgdcont():
    # the simulator behaves like the modem: CGDCONT alone does not move the
    # bearer; CGATT=0/1 or CFUN=0/1 do; CFUN=0 deregisters
    sim = modem_sim.SimModem("happy", stored_apn="old")
    sim.receive(b'ATE0\rAT+CGDCONT=1,"IP","new"\r')
    assert sim.pdp.attach_apn == "old" and not sim.pdp.can_dial()
    assert b"+CGATT: 1" in sim.receive(b"AT+CGATT?\r")
    sim.receive(b"AT+CFUN=0\r")
    assert b"+CGATT: 0" in sim.receive(b"AT+CGATT?\r") and b"+CEREG: 0,0" in sim.receive(b"AT+CEREG?\r")
    assert b"ERROR" in sim.receive(b"AT+CGATT=1\r")
    sim.receive(b"AT+CFUN=1\r")
    assert sim.pdp.attach_apn == "new" and sim.pdp.can_dial()
    rej = modem_sim.SimModem("apn_rejected", stored_apn="")
    rej.receive(b'ATE0\rAT+CGDCONT=1,"IP","internet"\rAT+CGATT=0\r')
    assert b"+CME ERROR: 148" in rej.receive(b"AT+CGATT=1\r") and not rej.pdp.can_dial()


def test_a7670_boot_line_is_unsolicited():
    # issue 17.6: the A76XX says "*ATREADY: 1" where the others say RDY
    assert at_modem.Modem.is_urc("*ATREADY: 1") and at_modem.Modem.is_urc("RDY")
    sim = modem_sim.SimModem("happy", "a7670")
    assert b"*ATREADY: 1" in sim.banner()
    res, _, m = run_probe("happy", model="a7670", apn="internet", sim=sim)
    assert res["data"] == "connect" and res["model_name"] == "A7670E-LASE"
