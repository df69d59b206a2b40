"""Programs the host tools run on a board over the raw REPL (mpremote's
exec). They are MicroPython source read as text (program()), never imported
here: they use the board's modules (drivers, flashlog)."""
import pathlib

_DIR = pathlib.Path(__file__).resolve().parent


def program(name, **params):
    """The source of device program `name` (a .py file in this package) with
    its parameters prepended as assignments. Only ints are accepted: nothing
    from the command line can become code on the board."""
    head = []
    for k in sorted(params):
        v = params[k]
        if type(v) is not int:
            raise TypeError("device program parameter %s must be an int, got %r" % (k, v))
        head.append("%s = %d\n" % (k, v))
    return "".join(head) + (_DIR / (name + ".py")).read_text()
