"""What monitor and dashboard read from the fleet model (fleet.py): a row
per device (`vegw monitor`), a row per site with its devices folded in and
one site in detail (`vegw dashboard`); staleness and sort order. FleetViews
is the reading half of fleet.Fleet, which takes the messages."""
import fnmatch
SORT_KEYS = ("soc", "voltage", "current", "pv_power", "last_seen", "name")
SEVERITIES = ("info", "warning", "alarm")
_DEFAULT_HEARTBEAT = 300  # the firmware's default, for a gateway that declares none


def _num(v):
    """v if it is a finite number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return v


class FleetViews:
    def _limit(self, hb):
        return self.stale_s if self.stale_s is not None else 2 * (hb or _DEFAULT_HEARTBEAT)

    def _device_view(self, r, avail, hb, now):
        """(last seen unix s or None, stale, never heard) of one device."""
        seens = [x for x in (r.seen_state, r.seen_status) if x is not None]
        seen = max(seens) if seens else None
        # the gateway's verdict counts unless a state came after that status
        by_status = r.stale_by_status and r.status_at is not None and (r.state_at is None or r.state_at <= r.status_at)
        never = r.seen_state is None and r.seen_status is None and r.status_at is not None and r.state_at is None
        stale = seen is None or now - seen > self._limit(hb) or avail == "offline" or by_status
        return seen, stale, never

    def rows(self, sort="soc", now=None, match=None):
        """`vegw monitor`'s rows: one dict per gateway+device, sorted
        ascending by `sort`, nulls last; `match` (a glob) keeps only
        gateways whose id matches."""
        now = self.clock() if now is None else now
        out = []
        with self.lock:  # read under the lock: rows are updated in place by the network thread
            for (gw, dev), r in self.devices.items():
                if match and not fnmatch.fnmatchcase(gw, match):
                    continue
                g = self.gateways[gw]
                seen, stale, never = self._device_view(r, g.availability, g.heartbeat, now)
                last = None if seen is None else round(max(0.0, now - seen), 1)
                out.append({"gateway": gw, "device": dev, "soc": r.soc, "voltage": r.voltage, "current": r.current,
                            "pv_power": r.pv, "alarms": len(g.alarms), "link": g.link, "rssi_dbm": g.rssi,
                            "availability": g.availability, "last_seen": last, "stale": stale,
                            "never_heard": never, "heartbeat_s": g.heartbeat})
        out.sort(key=sort_key(sort))
        return out

    # ------------------------------------------------------------ sites
    def site_ids(self):
        with self.lock:
            return list(self.gateways)

    def sites(self, ids=None, now=None):
        """One dict per gateway (its devices folded in), for the given ids
        (default all); unknown ids are left out."""
        now = self.clock() if now is None else now
        out = []
        with self.lock:
            for gw in (self.gateways if ids is None else ids):
                g = self.gateways.get(gw)
                if g is not None:
                    out.append(self._site(gw, g, now))
        return out

    def _site(self, gw, g, now):
        soc = volt = cur = None
        bat_soc = None
        pv = kwh = load = None
        seen_max = None
        nstale = 0
        ndev = 0
        never = 0
        fallback = None  # a device with V and I but no SOC (a charger's or a DC-DC's battery side)
        for dev in g.devices:
            r = self.devices.get((gw, dev))
            if r is None:
                continue
            ndev += 1
            seen, stale, nev = self._device_view(r, g.availability, g.heartbeat, now)
            nstale += stale
            never += nev
            if seen is not None and (seen_max is None or seen > seen_max):
                seen_max = seen
            f = r.fields or {}
            if r.soc is not None and (bat_soc is None or r.soc < bat_soc):  # the weakest bank speaks for the site
                bat_soc = r.soc
                soc, volt, cur = r.soc, r.voltage, r.current
            elif fallback is None and r.voltage is not None and r.current is not None and r.pv is None \
                    and "SOC" not in f:
                fallback = (r.voltage, r.current)
            if r.pv is not None:
                pv = (pv or 0) + r.pv
            y = _num(f.get("pv_kwh_today"))
            y = y if y is not None else _num(f.get("H20"))
            if y is not None:
                kwh = (kwh or 0) + y
            lw = _device_load(f)
            if lw is not None:
                load = (load or 0) + lw
        if bat_soc is None and fallback is not None:
            volt, cur = fallback
        if g.status_at is not None and (seen_max is None or g.status_at > seen_max):
            seen_max = g.status_at
        alarms = sorted(([n, a[0], a[1], a[2]] for n, a in g.alarms.items()),
                        key=lambda a: (-SEVERITIES.index(a[1]), a[0]))
        if g.availability == "offline":
            state = "offline"
        elif any(a[1] == "alarm" for a in alarms):
            state = "alarm"
        elif nstale or not ndev:
            state = "stale"
        elif alarms:
            state = "warning"
        else:
            state = "ok"
        return {"id": gw, "state": state, "soc": soc, "v": volt, "i": cur, "pv_w": pv, "pv_kwh": kwh,
                "load_w": None if load is None else round(load, 1), "link": g.link, "rssi": g.rssi, "seen": seen_max, "alarms": alarms,
                "ndev": ndev, "nstale": nstale, "never": never, "avail": g.availability,
                "avail_since": g.avail_since, "fw": g.fw}

    def site_detail(self, gw, now=None):
        """Everything the site page shows: the site row, each device's latest
        state and freshness, the gateway's status, alarm history."""
        now = self.clock() if now is None else now
        with self.lock:
            g = self.gateways.get(gw)
            if g is None:
                return None
            site = self._site(gw, g, now)
            devs = []
            for dev in g.devices:
                r = self.devices.get((gw, dev))
                if r is None:
                    continue
                seen, stale, never = self._device_view(r, g.availability, g.heartbeat, now)
                devs.append({"name": dev, "seen": seen, "stale": stale, "never": never,
                             "fields": dict(r.fields) if r.fields else {}})
            status = dict(g.status) if g.status else {}
            status.pop("devices", None)
            history = [list(h) for h in g.history]
        return {"site": site, "devices": devs, "status": status, "status_at": g.status_at,
                "heartbeat_s": g.heartbeat, "history": history}


def _device_load(f):
    """Load power (W) a device reports: the derived load_power, an
    inverter's AC output (its VA over VE.Direct, taken as W), else the
    load output's V * IL."""
    for k in ("load_power", "ac_out_power", "AC_OUT_S"):
        v = _num(f.get(k))
        if v is not None:
            return v
    v, il = _num(f.get("V")), _num(f.get("IL"))
    if v is not None and il is not None:
        return v * il
    return None


def sort_key(sort):
    if sort == "name":
        return lambda r: (r["gateway"], r["device"])
    field = sort

    def key(r):
        v = r[field]
        return (v is None, v if v is not None else 0, r["gateway"], r["device"])

    return key
