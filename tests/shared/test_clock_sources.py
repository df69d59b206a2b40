# Time sources for a board whose clock starts at 2000 (issue 17.1): SNTP
# answers and the modem's network time, parsed without ever raising.
import struct

import at_modem
import sntp


def _answer(unix, li=0, stratum=2, mode=4):
    b = bytearray(48)
    b[0] = (li << 6) | (4 << 3) | mode
    b[1] = stratum
    b[40:48] = struct.pack("!II", unix + 2208988800, 0x80000000)
    return bytes(b)


def test_sntp_request_and_parse():
    r = sntp.request()
    assert len(r) == 48 and r[0] == 0x23
    assert sntp.parse(_answer(1764936000)) == 1764936000.5
    for bad in (None, b"", b"x" * 47, _answer(1764936000, li=3), _answer(1764936000, stratum=0),
                _answer(1764936000, stratum=16), _answer(1764936000, mode=3), _answer(946684800)):
        assert sntp.parse(bad) is None


def test_modem_clock_to_utc():
    # 2025-12-05 14:23:10 at UTC+1 (+04 quarter hours) is 13:23:10 UTC
    assert at_modem.parse_cclk('+CCLK: "25/12/05,14:23:10+04"') == 1764940990
    assert at_modem.parse_cclk('+CCLK: "25/12/05,13:23:10-00"') == 1764940990
    assert at_modem.parse_cclk('+CCLK: "24/02/29,00:00:00+00"') == 1709164800
    # a modem whose clock was never set by the network
    for bad in ('+CCLK: "70/01/01,00:00:05+00"', '+CCLK: "80/01/06,00:00:00+00"', "+CCLK: garbage",
                '+CCLK: "25/13/05,14:23:10+04"', "", '+CCLK: "25/12/05"'):
        assert at_modem.parse_cclk(bad) is None, bad
