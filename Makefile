# vegw: the two commands a newcomer needs are `make sim` and `make test`.
# Both create .venv and install what they need (PyPI packages into .venv,
# Debian's mosquitto with apt-get when it is missing).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test sim bench lint deps mosquitto influxdb chromium clean firmware

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e .
	touch $@

deps: $(STAMP) mosquitto influxdb chromium

# The integration tests and the simulator talk to a real broker on loopback.
mosquitto:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  echo "installing Debian's mosquitto (integration tests start it on loopback)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto mosquitto-clients; \
	  $(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1 || true; \
	fi

# `vegw bridge`'s tests write to a real InfluxDB 1.x (Debian's influxdb),
# started by the tests on loopback with a temp config; the service stays off.
influxdb:
	@if ! command -v influxd >/dev/null 2>&1 && [ ! -x /usr/bin/influxd ]; then \
	  echo "installing Debian's influxdb (the bridge tests start it on loopback)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq influxdb; \
	  $(SUDO) systemctl disable --now influxdb >/dev/null 2>&1 || true; \
	fi

# `vegw dashboard`'s browser test and benchmark drive Debian's headless
# chromium through the playwright package (it never downloads a browser).
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Debian's chromium (the dashboard's browser test runs it headless)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; \
	fi

test: deps
	$(PY) -m pytest -q -p no:randomly -n 3 --dist loadfile tests

sim: deps
	$(VENV)/bin/vegw sim

bench: deps
	$(PY) bench/run.py

# The firmware against MicroPython's ESP32 and stdlib stubs (mypy.ini).
STUBS := $(VENV)/lib/python3*/site-packages
lint: deps
	@mkdir -p build/stubs
	@for m in time machine network bluetooth esp32 micropython cryptolib; do \
	  cp $(STUBS)/$$m.pyi build/stubs/ ; done
	$(PY) -m mypy --config-file mypy.ini firmware

# A board image (boards/$(BOARD)) built in Espressif's ESP-IDF container with
# the MicroPython release pinned in boards/toolchain.env; needs Docker and git
# only (not the venv). Image and .sha256 in build/firmware/.
BOARD  ?=
DOCKER ?= docker
firmware:
	@if [ -z "$(BOARD)" ]; then echo "make firmware BOARD=NAME (boards: $$(cd boards && ls */mpconfigboard.cmake | cut -d/ -f1 | tr '\n' ' '))"; exit 2; fi
	PYTHONPATH=host_tools DOCKER=$(DOCKER) $(PYTHON) -m vegw.firmware_build --board $(BOARD)

clean:
	rm -rf $(VENV) build .pytest_cache
