"""docs/telegraf.conf as Telegraf reads it: a TOML document (tomllib) with
the plugin structure Telegraf expects. A plugin option written after a
[[...topic_parsing]] header lands inside that table, where Telegraf refuses
it: the bug this test was written for (`fieldexclude` under topic_parsing)."""
import os
import tomllib

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "telegraf.conf")

# what Telegraf's mqtt_consumer accepts in a topic_parsing table
_TOPIC_PARSING = {"topic", "measurement", "tags", "fields", "types"}


def load():
    with open(CONF, "rb") as f:
        return tomllib.load(f)


def test_parses_as_toml_with_telegraf_structure():
    conf = load()
    assert set(conf) <= {"agent", "global_tags", "inputs", "outputs", "processors", "aggregators"}
    consumers = conf["inputs"]["mqtt_consumer"]
    assert isinstance(consumers, list) and len(consumers) >= 3
    for c in consumers:
        assert isinstance(c["servers"], list) and all(isinstance(s, str) for s in c["servers"])
        assert isinstance(c["topics"], list) and c["data_format"] == "json"
        for tp in c.get("topic_parsing", ()):
            assert set(tp) <= _TOPIC_PARSING, "plugin options inside topic_parsing: %s" % (set(tp) - _TOPIC_PARSING)
            # the topic pattern and the tag pattern have as many levels
            assert tp["topic"].count("/") == tp["tags"].count("/")
            assert tp["topic"] in c["topics"]
    state = [c for c in consumers if c["topics"] == ["vegw/+/+/state"]][0]
    assert state["fieldexclude"] == ["seq"] and state["json_time_key"] == "ts"
    execd = conf["inputs"]["execd"]
    assert len(execd) == 1 and execd[0]["data_format"] == "influx"
    assert execd[0]["command"][:2] == ["vegw", "bridge"] and "--stdout" in execd[0]["command"]
    out = conf["outputs"]["influxdb"][0]
    assert isinstance(out["urls"], list) and out["database"] == "vegw"
    for proc in conf.get("processors", {}).values():
        assert isinstance(proc, list)


def test_dashboard_reads_the_one_minute_history():
    import json

    with open(os.path.join(os.path.dirname(CONF), "grafana-dashboard.json")) as f:
        dash = json.load(f)
    series = [t["query"] for p in dash["panels"] for t in p.get("targets", ())
              if "GROUP BY time(" in t.get("query", "") and "rssi" not in t["query"]]
    assert len(series) >= 4 and all('FROM "vegw" ' in q for q in series), series
    # the measurements every query reads are the ones the config or the bridge writes
    meas = set()
    for p in dash["panels"]:
        for t in p.get("targets", ()):
            q = t.get("query", "")
            meas.update(x.split('"')[0] for x in q.split('FROM "')[1:])
    assert meas <= {"vegw", "vegw_state", "vegw_status", "vegw_event"}, meas
