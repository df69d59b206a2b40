# Alarm rule language: one rule per line, parsed once at config load into a
# compact form the engine (alarm_engine.py) links to value slots. No eval/exec.
#
#   NAME: SEVERITY: CONDITION [for DURATION] [clear CONDITION|NUMBER] [after DURATION] [latch] [allow_ble]
#
#   low_bank: alarm: house.V < 24.0 and house.I < 10 for 5m clear house.V > 24.4 after 1m
#
# SEVERITY is info | warning | alarm. DURATION is a number and one of s m h d.
# CONDITION: comparisons (< <= > >= == !=) between DEVICE.FIELD and a number or
# another DEVICE.FIELD, joined by and / or / not and parentheses (not > and > or).
# The trailing clauses may come in any order, each at most once.
#
# Compiled rule (a tuple, see _rule()):
#   (name, severity, cond, for_s, clear, after_s, latch, allow_ble, line)
#   severity: 0 info, 1 warning, 2 alarm
#   cond, clear: RPN, a tuple of 4-tuples (op, a, b, b_is_ref):
#     op 0..5 = < <= > >= == !=  with a = (device, field), b = number or (device, field)
#     op 6 and, 7 or, 8 not      (a, b unused)
#   clear is None when the rule has no `clear` ("CONDITION no longer holds");
#   a hysteresis `clear NUMBER` is compiled to a single comparison here.
#   Fields are canonical names (aliases resolved through field_aliases.resolve).
#
# Errors never raise: parse_rules returns (line, column, message), both 1-based,
# the column pointing at the offending token. One error per bad line.
#
# Length: one language (tokenizer, parser and compiler of the rule grammar, with
# its suggestions); an eighth of it documents the grammar.
import field_aliases

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


SEVERITIES = ("info", "warning", "alarm")
OPS = ("<", "<=", ">", ">=", "==", "!=")
OP_AND = const(6)
OP_OR = const(7)
OP_NOT = const(8)
_AND = (6, None, None, False)
_OR = (7, None, None, False)
_NOT = (8, None, None, False)

_MAX_DEPTH = const(16)  # nesting of parentheses / not, bounds the recursion
_MAX_LINE = const(400)  # longer lines are refused (config strings are small)
_MAX_TERMS = const(32)  # comparisons per condition

# token kinds
_ID = const(0)
_REF = const(1)
_NUM = const(2)
_DUR = const(3)
_OP = const(4)
_LP = const(5)
_RP = const(6)
_COLON = const(7)
_END = const(8)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CLAUSES = ("for", "clear", "after", "latch", "allow_ble")
_BOOLS = {"true": 1, "false": 0, "on": 1, "off": 0}
# flipped operator when the number is written first: 24 > house.V == house.V < 24
_FLIP = (2, 3, 0, 1, 4, 5)


class _Err(Exception):
    def __init__(self, col, msg):
        self.col = col
        self.msg = msg


def _is_alpha(c):
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c == "_"


def _is_digit(c):
    return "0" <= c <= "9"


def _is_word(c):
    return _is_alpha(c) or _is_digit(c)


def _tokenize(s):
    toks = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        col = i + 1
        if c in " \t\r\n":
            i += 1
        elif c == "#":
            break  # comment to end of line ('#' inside a word, as in SER#, is not one)
        elif c == ":":
            toks.append((_COLON, ":", col))
            i += 1
        elif c == "(":
            toks.append((_LP, "(", col))
            i += 1
        elif c == ")":
            toks.append((_RP, ")", col))
            i += 1
        elif c in "<>=!":
            two = s[i:i + 2]
            if two in ("<=", ">=", "==", "!="):
                toks.append((_OP, OPS.index(two), col))
                i += 2
            elif c in "<>":
                toks.append((_OP, OPS.index(c), col))
                i += 1
            elif c == "=":
                raise _Err(col, "use '==' to compare")
            else:
                raise _Err(col, "unexpected '!'; use 'not' or '!='")
        elif _is_digit(c) or (c in "+-." and i + 1 < n and (_is_digit(s[i + 1]) or s[i + 1] == ".")):
            j = i + 1
            while j < n and (_is_word(s[j]) or s[j] == "."):
                j += 1
            toks.append(_number(s[i:j], col))
            i = j
        elif _is_alpha(c):
            j = i + 1
            while j < n and (_is_word(s[j]) or s[j] == "-"):
                j += 1
            if j < n and s[j] == ".":
                k = j + 1
                while k < n and (_is_word(s[k]) or s[k] == "#"):
                    k += 1
                if k == j + 1:
                    raise _Err(col, "expected a field name after '%s.'" % s[i:j])
                toks.append((_REF, (s[i:j], s[j + 1:k]), col))
                i = k
            else:
                toks.append((_ID, s[i:j], col))
                i = j
        else:
            raise _Err(col, "unexpected character '%s'" % c)
    toks.append((_END, "", n + 1))
    return toks


def _number(text, col):
    # number: [+-]digits[.digits] or 0x hex; duration: number + one of s m h d
    body = text
    sign = 1
    if body[0] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if len(body) > 2 and body[:2] in ("0x", "0X"):
        try:
            return (_NUM, sign * int(body[2:], 16), col)
        except ValueError:
            raise _Err(col, "bad number '%s'" % text)
    j = 0
    while j < len(body) and (_is_digit(body[j]) or body[j] == "."):
        j += 1
    num, unit = body[:j], body[j:]
    if num.count(".") > 1 or num in ("", "."):
        raise _Err(col, "bad number '%s'" % text)
    val = float(num) if "." in num else int(num)
    if unit == "":
        return (_NUM, sign * val, col)
    if unit in _UNITS and sign == 1 and text[0] != "+":
        secs = val * _UNITS[unit]
        if secs == int(secs):
            secs = int(secs)  # 1.5h -> 5400: an int deadline stays exact on a float32 board
        return (_DUR, secs, col)
    raise _Err(col, "bad number or duration '%s'; durations look like 30s, 5m, 2h, 1d" % text)


class _Parser:
    def __init__(self, toks, field_ok):
        self.toks = toks
        self.i = 0
        self.field_ok = field_ok
        self.out = []
        self.terms = 0

    def peek(self):
        return self.toks[self.i]

    def take(self):
        t = self.toks[self.i]
        if t[0] != _END:
            self.i += 1
        return t

    def at_clause_end(self):
        t = self.toks[self.i]
        return t[0] == _END or (t[0] == _ID and t[1] in _CLAUSES)

    def condition(self):
        start = len(self.out)
        t = self.peek()
        if self.at_clause_end():
            raise _Err(t[2], "expected a condition")
        self.or_expr(0)
        return tuple(self.out[start:])

    def or_expr(self, depth):
        self.and_expr(depth)
        while self.peek()[0] == _ID and self.peek()[1] == "or":
            self.take()
            self.and_expr(depth)
            self.out.append(_OR)

    def and_expr(self, depth):
        self.not_expr(depth)
        while self.peek()[0] == _ID and self.peek()[1] == "and":
            self.take()
            self.not_expr(depth)
            self.out.append(_AND)

    def not_expr(self, depth):
        t = self.peek()
        if depth >= _MAX_DEPTH:
            raise _Err(t[2], "condition nested too deeply (at most %d levels)" % _MAX_DEPTH)
        if t[0] == _ID and t[1] == "not":
            self.take()
            self.not_expr(depth + 1)
            self.out.append(_NOT)
        elif t[0] == _LP:
            self.take()
            self.or_expr(depth + 1)
            r = self.peek()
            if r[0] != _RP:
                raise _Err(t[2], "missing ')' for this '('")
            self.take()
        else:
            self.comparison()

    def operand(self):
        t = self.take()
        if t[0] == _REF:
            dev, field = t[1]
            reason = self.field_ok(dev, field)
            if reason:
                raise _Err(t[2], reason)
            canon = field_aliases.resolve(field)
            return (dev, canon if canon is not None else field), True, t
        if t[0] == _NUM:
            return t[1], False, t
        if t[0] == _ID and t[1].lower() in _BOOLS:
            return _BOOLS[t[1].lower()], False, t
        if t[0] == _END:
            raise _Err(t[2], "expected DEVICE.FIELD or a number at end of rule")
        if t[0] == _ID and t[1] not in ("and", "or", "not") and t[1] not in _CLAUSES:
            raise _Err(t[2], "expected DEVICE.FIELD, got '%s'" % t[1])
        if t[0] == _DUR:
            raise _Err(t[2], "expected DEVICE.FIELD or a number, got a duration")
        raise _Err(t[2], "expected DEVICE.FIELD or a number, got '%s'" % _text(t))

    def comparison(self):
        a, a_ref, ta = self.operand()
        o = self.peek()
        if o[0] != _OP:
            if o[0] == _END:
                raise _Err(o[2], "expected a comparison (< <= > >= == !=) after '%s'" % _text(ta))
            raise _Err(o[2], "expected a comparison (< <= > >= == !=), got '%s'" % _text(o))
        self.take()
        b, b_ref, tb = self.operand()
        op = o[1]
        if not a_ref:
            if not b_ref:
                raise _Err(ta[2], "a comparison needs DEVICE.FIELD on one side")
            a, b, a_ref, b_ref, op = b, a, True, False, _FLIP[op]
        self.terms += 1
        if self.terms > _MAX_TERMS:
            raise _Err(ta[2], "too many comparisons in one condition (at most %d)" % _MAX_TERMS)
        self.out.append((op, a, b, b_ref))


def _text(t):
    if t[0] == _REF:
        return t[1][0] + "." + t[1][1]
    if t[0] == _OP:
        return OPS[t[1]]
    return str(t[1])


def _parse_line(s, field_ok):
    lead = len(s) - len(s.lstrip())
    if lead < len(s) and _is_digit(s[lead]) and ":" in s:
        raise _Err(lead + 1, "a rule name must start with a letter or '_'")
    toks = _tokenize(s)
    if toks[0][0] == _END:
        return None
    t = toks[0]
    if t[0] != _ID:
        raise _Err(t[2], "expected a rule name ('NAME: SEVERITY: CONDITION')")
    name = t[1]
    if toks[1][0] != _COLON:
        raise _Err(toks[1][2], "expected ':' after the rule name")
    t = toks[2]
    if t[0] != _ID or t[1] not in SEVERITIES:
        if t[0] == _END:
            raise _Err(t[2], "expected a severity: info, warning or alarm")
        raise _Err(t[2], "unknown severity '%s'; expected info, warning or alarm" % _text(t))
    sev = SEVERITIES.index(t[1])
    if toks[3][0] != _COLON:
        raise _Err(toks[3][2], "expected ':' after the severity")
    p = _Parser(toks, field_ok)
    p.i = 4
    cond = p.condition()
    for_s = after_s = None
    clear = None
    clear_seen = latch = allow_ble = False
    while True:
        t = p.take()
        if t[0] == _END:
            break
        if t[0] != _ID or t[1] not in _CLAUSES:
            raise _Err(t[2], "unexpected '%s'; expected and, or, for, clear, after, latch or allow_ble" % _text(t))
        kw = t[1]
        if (kw == "for" and for_s is not None) or (kw == "clear" and clear_seen) or (
                kw == "after" and after_s is not None) or (kw == "latch" and latch) or (
                kw == "allow_ble" and allow_ble):
            raise _Err(t[2], "'%s' given twice" % kw)
        if kw == "latch":
            latch = True
        elif kw == "allow_ble":
            allow_ble = True
        elif kw in ("for", "after"):
            d = p.take()
            if d[0] != _DUR:
                if d[0] == _NUM:
                    raise _Err(d[2], "duration needs a unit: s, m, h or d (e.g. %ss)" % _text(d))
                raise _Err(d[2], "expected a duration after '%s' (e.g. 30s, 5m, 2h, 1d)" % kw)
            if kw == "for":
                for_s = d[1]
            else:
                after_s = d[1]
        else:
            clear_seen = True
            n = p.peek()
            nxt = p.toks[p.i + 1] if n[0] != _END else n
            if n[0] == _NUM and (nxt[0] == _END or (nxt[0] == _ID and nxt[1] in _CLAUSES)):
                p.take()
                clear = _hysteresis(cond, n)
            else:
                if n[0] == _END:
                    raise _Err(n[2], "expected a condition or a number after 'clear'")
                clear = p.condition()
    return (name, sev, cond, for_s or 0, clear, after_s or 0, latch, allow_ble)


def _hysteresis(cond, tok):
    level = tok[1]
    if len(cond) != 1 or cond[0][3] or cond[0][0] > 3:
        raise _Err(tok[2], "'clear NUMBER' needs a condition that is one comparison "
                   "(< <= > >=) with a number; use 'clear CONDITION'")
    op, ref, limit, _ = cond[0]
    if op <= 1:  # < or <=: clears when the value is back at or above the level
        if level < limit:
            raise _Err(tok[2], "clear level %s is below the alarm level %s of '%s'" % (level, limit, OPS[op]))
        return ((3, ref, level, False),)
    if level > limit:
        raise _Err(tok[2], "clear level %s is above the alarm level %s of '%s'" % (level, limit, OPS[op]))
    return ((1, ref, level, False),)


def parse_rules(text_or_lines, field_ok=None):
    """Parse a rules file (str) or a list of rule strings (one per line).

    field_ok(device, field) -> None if the field exists, else the message to show.
    Returns (rules, errors): compiled rules (see the module comment) and a list of
    (line, column, message), both 1-based. Never raises on bad text."""
    if field_ok is None:
        field_ok = default_field_ok(None)
    if isinstance(text_or_lines, str):
        lines = text_or_lines.split("\n")
    else:
        lines = text_or_lines
    rules = []
    errors = []
    seen = {}
    ln = 0
    for s in lines:
        ln += 1
        if not isinstance(s, str):
            errors.append((ln, 1, "rule must be a string"))
            continue
        if len(s) > _MAX_LINE:
            errors.append((ln, _MAX_LINE + 1, "rule longer than %d characters" % _MAX_LINE))
            continue
        try:
            r = _parse_line(s, field_ok)
        except _Err as e:
            errors.append((ln, e.col, e.msg))
            continue
        except Exception as e:  # noqa: BLE001 - a parser bug must not stop config load
            errors.append((ln, 1, "cannot parse rule (%s)" % e))
            continue
        if r is None:
            continue
        if r[0] in seen:
            errors.append((ln, s.find(r[0]) + 1, "duplicate rule name '%s' (first on line %d)" % (r[0], seen[r[0]])))
            continue
        seen[r[0]] = ln
        rules.append(r + (ln,))
    return rules, errors


def _distance(a, b):
    # Levenshtein distance, two rows; names are short and this runs only on errors
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        ca = a[i - 1]
        for j in range(1, len(b) + 1):
            cost = 0 if ca == b[j - 1] else 1
            x = prev[j] + 1
            y = cur[j - 1] + 1
            z = prev[j - 1] + cost
            cur[j] = x if x < y else y
            if z < cur[j]:
                cur[j] = z
        prev = cur
    return prev[len(b)]


def _prefix(a, b):
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def suggest(word, candidates):
    """Closest candidate by case-insensitive edit distance (ties: longer common
    prefix, then exact case), or None when nothing is reasonably close."""
    w = word.lower()
    best = None
    best_key = None
    for c in candidates:
        cl = c.lower()
        key = (_distance(w, cl), -_prefix(w, cl), 0 if c[:1] == word[:1] else 1)
        if best_key is None or key < best_key:
            best, best_key = c, key
    if best is None or best_key[0] > 1 + len(word) // 2:
        return None
    return best


def _load_metrics():
    # The derived metrics register their field names when imported. Import
    # them only when a rule names a field no decoder knows: a gateway whose
    # rules read only decoded values never loads the metrics code.
    try:
        import metrics  # noqa: F401
    except ImportError:
        return False
    return True


def default_field_ok(devices=None):
    """field_ok for parse_rules: a field exists when field_aliases.resolve() knows it
    (VE.Direct labels, documented aliases, registered BLE and metric names); the
    device must be one of `devices` when a list is given."""
    devs = list(devices) if devices is not None else None

    def ok(device, field):
        if devs is not None and device not in devs:
            if not devs:
                return "unknown device '%s' (no devices configured)" % device
            s = suggest(device, devs)
            if s is not None:
                return "unknown device '%s'; did you mean '%s'?" % (device, s)
            return "unknown device '%s'; configured: %s" % (device, ", ".join(devs))
        if field_aliases.resolve(field) is not None:
            return None
        if _load_metrics() and field_aliases.resolve(field) is not None:
            return None
        s = suggest(field, field_aliases.all_names())
        if s is not None:
            return "unknown field '%s.%s'; did you mean '%s.%s'?" % (device, field, device, field_aliases.resolve(s))
        return "unknown field '%s.%s'" % (device, field)

    return ok


def refs(rule):
    """Every (device, field) a compiled rule reads, condition and clear."""
    out = []
    for prog in (rule[2], rule[4] or ()):
        for ins in prog:
            if ins[0] <= 5:
                if ins[1] not in out:
                    out.append(ins[1])
                if ins[3] and ins[2] not in out:
                    out.append(ins[2])
    return out


def severity_name(code):
    return SEVERITIES[code]
