# Host twin of drivers/relay.py: records the switching instead of driving a pin.
class Relay:
    def __init__(self, pin=None, active=1):
        if isinstance(pin, dict):  # the board.json form {"pin": n, "active": 0|1}
            active = pin.get("active", active)
            pin = pin.get("pin")
        self.pin = pin
        self.active = 1 if active else 0
        self.on = False
        self.switches = 0
        self.history = []  # bounded: last _MAX_HISTORY states

    def set(self, on):
        on = bool(on)
        if on != self.on:
            self.switches += 1
            self.history.append(on)
            if len(self.history) > 32:  # _MAX_HISTORY
                self.history = self.history[-32:]
        self.on = on

    def get(self):
        return self.on
