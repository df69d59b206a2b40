"""A UDP responder on a free loopback port, in a daemon thread: the shape of
the simulator's SNTP and DNS servers. Subclasses answer one datagram in
respond(data) (None: no answer)."""
import socket
import threading


class UdpServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)  # how soon stop() is noticed
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def respond(self, data):
        raise NotImplementedError

    def _serve(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            out = self.respond(data)
            if out:
                try:
                    self.sock.sendto(out, peer)
                except OSError:
                    pass

    def stop(self):
        self._stop = True
        self.sock.close()
