"""`vegw decode` contract: JSON lines per verified block, counters on stderr."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = [str(pathlib.Path(sys.executable).with_name("vegw"))]
FIX = ROOT / "tests" / "fixtures"


def vegw(*args, input=None):
    return subprocess.run(VEGW + list(args), input=input, capture_output=True, timeout=60)


def test_decode_file_prints_one_json_object_per_block():
    r = vegw("decode", str(FIX / "faq_bmv700.bin"))
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj == {"PID": 515, "V": 26.201, "I": 0.0, "P": 0, "CE": 0.0, "SOC": 100.0, "TTG": None,
                   "Alarm": False, "Relay": False, "AR": 0, "BMV": "700", "FW": "0307"}
    assert b"blocks_ok=1" in r.stderr and b"checksum_errors=0" in r.stderr


def test_decode_stdin_with_garbage_and_hex_frames():
    data = b"\x00\xffnoise" + (FIX / "gen_mppt.bin").read_bytes() + b"\x12\x34"
    r = vegw("decode", "-", input=data)
    assert r.returncode == 0
    objs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(objs) == 40
    assert all("PID" in o or "ERR" in o for o in objs)
    assert b"hex_ok=40" in r.stderr  # two async frames per second


def test_decode_hex_option_and_pretty():
    r = vegw("decode", "--hex", str(FIX / "gen_charger.bin"))
    objs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    hexes = [o for o in objs if "hex" in o]
    assert hexes and hexes[0]["register"] == 0xED8D and hexes[0]["command"] == 0xA
    r = vegw("decode", "--pretty", str(FIX / "gen_inverter.bin"))
    text = r.stdout.decode()
    assert "Phoenix Inverter Smart 12V 1200VA 230V" in text
    assert "(inverting)" in text and "230.00 V" in text


def test_decode_missing_file_is_one_line_exit_2():
    r = vegw("decode", "/nonexistent/capture.bin")
    assert r.returncode == 2
    assert b"Traceback" not in r.stderr
    assert r.stderr.decode().strip().count("\n") <= 1


def test_gen_then_decode_roundtrip():
    r = subprocess.run(VEGW + ["gen", "bmv712", "--seconds", "5"], capture_output=True, timeout=60)
    d = vegw("decode", "-", input=r.stdout)
    objs = [json.loads(x) for x in d.stdout.decode().splitlines()]
    assert len(objs) == 10
    assert objs[0]["PID"] == 0xA381 and isinstance(objs[0]["V"], float)


def _block(fields):
    body = b"".join(b"\r\n" + k + b"\t" + v for k, v in fields) + b"\r\nChecksum\t"
    return body + bytes(((256 - sum(body)) & 0xFF,))


def test_decode_text_runs_into_hex_frames_without_checksum_stays_bounded(tmp_path):
    # issue 23: a 1.8 KB file of text lines with a HEX frame every 64 bytes and
    # no Checksum: the parser kept the text before each ':' when its 256-byte
    # step ended inside the frame, skipped the size check and `vegw decode`
    # exited 2 with BufferError. Now: bounded, counted, the next block decodes.
    period = b"\r\nV\t12800" * 5 + b"\r\nI\t12" + b":A0102000543\n"
    assert len(period) == 64
    data = b"\r\nV\t1" + period * 28 + _block([(b"PID", b"0x203"), (b"V", b"26201")])
    assert 1800 <= len(data) <= 1900
    f = tmp_path / "junk.bin"
    f.write_bytes(data)
    r = vegw("decode", str(f))
    assert r.returncode == 0, r.stderr
    assert [json.loads(x) for x in r.stdout.decode().splitlines()] == [{"PID": 515, "V": 26.201}]
    assert b"overflows=" in r.stderr and b"overflows=0" not in r.stderr
    assert b"callback_errors=0" in r.stderr


def test_decode_odd_labels_and_long_numbers_do_not_lose_the_block(tmp_path):
    data = _block([(b"PID", b"0x203"), (b"\xc3\xa9T", b"1"), (b"V", b"26201")])
    r = vegw("decode", "-", input=data)
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout.decode())
    assert obj["V"] == 26.201 and obj["\\xc3\\xa9T"] == "1"


def test_decode_survives_text_kept_across_hex_frames():
    # issue 23.3: every 256-byte scan step ends inside a HEX frame; the kept
    # text outgrew the buffer and `vegw decode` exited 2 with BufferError
    unit = b"\r\nV\t12800\r\nI\t-300" + b":A0123456789ABC"
    data = unit * 60 + b"\n" + (FIX / "faq_bmv700.bin").read_bytes()
    r = vegw("decode", "-", input=data)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.decode().splitlines()) == 1
    assert b"callback_errors=0" in r.stderr and b"overflows=" in r.stderr
