# Runs the test_* functions of one shared test module under the MicroPython
# unix port and prints one result line per test for tests/conftest.py to read:
#   @@VEGW PASS name | @@VEGW FAIL name | @@VEGW SKIP name reason
# A failing test's exception follows its FAIL line.
import sys
import gc


def main():
    modname = sys.argv[1]
    only = sys.argv[2:]
    mod = __import__(modname)
    names = [n for n in dir(mod) if n.startswith("test_")]
    names.sort()
    for name in names:
        if only and name not in only:
            continue
        fn = getattr(mod, name)
        gc.collect()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure
            if type(e).__name__ == "SkipTest":
                print("@@VEGW SKIP", name, e.args[0] if e.args else "")
                continue
            print("@@VEGW FAIL", name)
            sys.print_exception(e)
            continue
        print("@@VEGW PASS", name)
    print("@@VEGW END")


main()
