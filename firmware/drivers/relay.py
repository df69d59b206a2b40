# Alarm relay / buzzer output on a GPIO. `active` is the level that switches
# the load on (1 for most relay modules with a transistor driver, 0 for the
# common opto-isolated "low level trigger" boards). The pin is driven to the
# off level at construction, before anything else can happen.
from machine import Pin


class Relay:
    def __init__(self, pin, active=1):
        if isinstance(pin, dict):  # the board.json form {"pin": n, "active": 0|1}
            active = pin.get("active", active)
            pin = pin["pin"]
        self.active = 1 if active else 0
        self.pin = Pin(pin, Pin.OUT, value=1 - self.active)
        self.on = False
        self.switches = 0

    def set(self, on):
        on = bool(on)
        if on != self.on:
            self.switches += 1
        self.on = on
        self.pin.value(self.active if on else 1 - self.active)

    def get(self):
        return self.on
