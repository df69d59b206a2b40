# Runs on the board (vegw logs --port, over the raw REPL): prints up to
# _v_max records of the flash log from seq _v_from on, one line each:
#   @@R{"seq":..,"type":..,...}   a JSON record
#   @@B<seq> <type> <hex>         a binary record (minute frames)
#   @@D<count> <last seq>         the end of this batch
#   @@E<reason>                   no flash log here
# Parameters (prepended by vegw.device.program): _v_from, _v_first (1 on the
# first batch: start at the key frame before _v_from), _v_max. Names start
# with _v: the REPL's globals are the board's, and the FlashLog object is
# kept in _vl between batches.
try:
    _vl
except NameError:
    _vl = None
    try:
        from drivers import flash_esp32 as _vf
        import flashlog as _vfl

        _vl = _vfl.FlashLog(_vf.open_default())
    except ImportError as e:
        print("@@E no flash log on this firmware (%s)" % e)
if _vl is not None:
    import binascii as _vx

    _vn = 0
    # binary minute frames need the key frame before the first wanted seq
    _vf1 = (_vl.find_before(_v_from, 16) or _v_from) if _v_from and _v_first else (_v_from or _vl.oldest_seq() or 1)
    for _vs, _vt, _vp in _vl.read_from(_vf1):
        if _vn >= _v_max:
            break
        _vb = bytes(_vp)
        if _vt < 16 and _vb[:1] == b"{":
            print('@@R{"seq":%d,"type":%d,' % (_vs, _vt) + _vb[1:].decode())
        elif _vt:
            print("@@B%d %d %s" % (_vs, _vt, _vx.hexlify(_vb).decode()))
        _vn += 1
        _vlast = _vs
    print("@@D%d %d" % (_vn, _vlast if _vn else 0))
