# HEX frame structure, against the worked examples of the BlueSolar HEX
# protocol document (rev 10) and real replies.
import vedirect_hex as vh
import vedirect_kernel


def test_worked_examples_decode():
    f = vh.decode(b":A0102000543\n")
    assert f.command == vh.RSP_ASYNC and f.register == 0x0201 and f.flags == 0
    assert f.value_uint() == 5
    f = vh.decode(b":7F0ED009600DB\n")
    assert f.command == vh.RSP_GET and f.register == 0xEDF0 and f.value_uint() == 0x96
    f = vh.decode(b":70010007800C6\n")  # BMV battery capacity 120 Ah
    assert f.register == 0x1000 and f.value_uint() == 120
    f = vh.decode(b":51641F9\n")  # ping reply: version word 0x4116
    assert f.command == vh.RSP_PING and f.payload == b"\x16\x41" and f.register is None
    f = vh.decode(b":77777015F\n")  # unknown id: flag 0x01
    assert f.register == 0x7777 and f.flags == vh.FLAG_UNKNOWN_ID and not f.ok()


def test_encode_matches_document():
    assert vh.encode(vh.CMD_PING) == b":154\n"
    assert vh.encode(vh.CMD_APP_VERSION) == b":352\n"
    assert vh.encode(vh.CMD_PRODUCT_ID) == b":451\n"
    assert vh.get_register(0xEDF0) == b":7F0ED0071\n"
    assert vh.set_register(0xEDF0, b"\x64\x00") == b":8F0ED0064000C\n"
    # register ids go on the wire low byte first: 0x2003 is "0320"
    assert vh.get_register(0x2003).startswith(b":70320")


def test_signed_values():
    f = vh.decode(vh.register_frame(vh.RSP_ASYNC, 0xEDDB, b"\xf6\xff"))  # -10
    assert f.value_int() == -10 and f.value_uint() == 0xFFF6


def test_bad_frames_are_none():
    for bad in (b":A0102000544\n", b":a0102000543\n", b"A0102000543\n", b":\n", b":A01020005\n",
                b":G0102000543\n", b":A01020X0543\n", b""):
        assert vh.decode(bad) is None, bad


def test_parser_check_agrees_with_decoder():
    for frame in (b":A0102000543\n", b":7F0ED009600DB\n", b":A0102000544\n", b":154\n"):
        assert (vedirect_kernel.hex_ok(frame, len(frame)) == 1) == (vh.decode(frame) is not None)
