"""A throw-away Mosquitto on loopback for tests, `vegw sim` and `vegw monitor`.

    with Broker() as b:                 # anonymous, free port
        ... connect to 127.0.0.1:b.port ...
        b.pause(); ...; b.resume()      # SIGSTOP/SIGCONT: a black-holed broker

    Broker(users={"u": "p"})            # password file, anonymous refused
    Broker(tls=True)                    # plus a TLS listener on b.tls_port with a
                                        # CA in b.ca_pem (server cert for 127.0.0.1
                                        # and localhost), made with `openssl`

`mosquitto_binary()` is None when Debian's mosquitto is not installed and
`tls_unavailable()` gives the reason TLS cannot be set up (or None); tests use
them to skip with a clear reason.
"""
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def mosquitto_binary():
    for p in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if p and os.path.exists(p):
            return p
    return None


def tls_unavailable():
    """None if a test CA and server certificate can be made, else the reason."""
    if shutil.which("openssl"):
        return None
    try:
        import cryptography  # noqa: F401 - only checked for presence
    except ImportError:
        return "neither the openssl command nor the python cryptography package is installed"
    return "cryptography package found but only the openssl command is supported here; install openssl"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def password_line(user, password, iterations=101):
    """A mosquitto 2.x password-file line ($7$ = PBKDF2-HMAC-SHA512)."""
    salt = os.urandom(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return "%s:$7$%d$%s$%s" % (user, iterations, base64.b64encode(salt).decode(), base64.b64encode(dk).decode())


def make_test_ca(directory):
    """CA + server certificate (SAN 127.0.0.1, localhost) with openssl.
    Returns (ca_pem, cert_pem, key_pem) paths."""
    d = str(directory)
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = os.path.join(d, "server.key"), os.path.join(d, "server.csr"), os.path.join(d, "server.pem")
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # EC P-256 keeps the handshake cheap for mbedtls on the MicroPython side
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca_pem, "-days", "2", "-subj", "/CN=vegw test CA")
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca_pem, crt, key


class Broker:
    def __init__(self, users=None, tls=False, verbose=False, acl_file=None):
        self.users = users
        self.acl_file = acl_file  # a Mosquitto ACL file (docs/mosquitto-acl.conf)
        self.tls = tls
        self.verbose = verbose
        self.port = None
        self.tls_port = None
        self.ca_pem = None
        self.proc = None
        self.paused = False
        self._dir = None

    def start(self, timeout=5.0):
        exe = mosquitto_binary()
        if exe is None:
            raise RuntimeError("mosquitto not installed (Debian package mosquitto; `make mosquitto`)")
        self._dir = tempfile.mkdtemp(prefix="vegw-broker-")
        self.port = free_port()
        lines = [
            "per_listener_settings false",
            "persistence false",
            "log_dest stderr" if self.verbose else "log_dest none",
            "listener %d 127.0.0.1" % self.port,
        ]
        if self.users:
            pw = os.path.join(self._dir, "passwd")
            with open(pw, "w") as f:
                for u, p in self.users.items():
                    f.write(password_line(u, p) + "\n")
            os.chmod(pw, 0o600)
            lines += ["allow_anonymous false", "password_file " + pw]
            if self.acl_file:
                lines.append("acl_file " + os.path.abspath(self.acl_file))
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            reason = tls_unavailable()
            if reason:
                raise RuntimeError("TLS listener: " + reason)
            self.ca_pem, crt, key = make_test_ca(self._dir)
            self.tls_port = free_port()
            lines += ["listener %d 127.0.0.1" % self.tls_port, "cafile " + self.ca_pem,
                      "certfile " + crt, "keyfile " + key]
        if os.getuid() == 0:
            lines.insert(0, "user root")  # keep access to our 0600 files
        conf = os.path.join(self._dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=None if self.verbose else subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        for port in [p for p in (self.port, self.tls_port) if p]:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("mosquitto exited with code %s" % self.proc.returncode)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError("mosquitto did not listen on port %d" % port)
                    time.sleep(0.02)
        return self

    def pause(self):
        """SIGSTOP: the kernel still completes TCP handshakes and buffers data,
        but nothing is answered (a black-holed broker)."""
        if self.proc and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.proc and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def kill(self):
        """The broker process dies (SIGKILL): connections reset, the port
        refuses; the config stays so restart() brings it back on the same port."""
        if self.proc is not None:
            if self.paused:
                self.resume()
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, timeout=5.0):
        """Start again on the same port(s) after kill()."""
        exe = mosquitto_binary()
        conf = os.path.join(self._dir, "mosquitto.conf")
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=None if self.verbose else subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not come back on port %d" % self.port)
                time.sleep(0.02)

    def stop(self):
        if self.proc is not None:
            if self.paused:
                self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def main(argv=None):
    """`python -m vegw.broker [--tls] [--user NAME:PASSWORD]`: run a loopback
    broker until Ctrl-C, printing where it listens."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m vegw.broker", description=main.__doc__)
    ap.add_argument("--tls", action="store_true", help="also a TLS listener with a fresh test CA")
    ap.add_argument("--user", help="NAME:PASSWORD; anonymous clients are then refused")
    ap.add_argument("--verbose", action="store_true", help="mosquitto's log on stderr")
    a = ap.parse_args(argv)
    users = None
    if a.user:
        if ":" not in a.user:
            sys.stderr.write("--user wants NAME:PASSWORD\n")
            return 2
        name, pw = a.user.split(":", 1)
        users = {name: pw}
    try:
        b = Broker(users=users, tls=a.tls, verbose=a.verbose).start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        sys.stderr.write("broker: %s\n" % e)
        return 2
    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)  # stop mosquitto and clean up on kill too
    print("mosquitto on 127.0.0.1:%d" % b.port, flush=True)
    if b.tls_port:
        print("TLS on 127.0.0.1:%d, CA %s" % (b.tls_port, b.ca_pem), flush=True)
    try:
        b.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
