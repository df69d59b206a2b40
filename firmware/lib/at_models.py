# What differs between the cellular modems vegw drives (SIMCom SIM7600,
# SIM7080G, A7670): one table, and the per-command timeouts. at_modem.py
# runs the dialogue; nothing here talks to a modem.


# Model differences, all in one table. Keys: the --model / config names.
#   match      substrings of the AT+CGMM answer that identify the model
#   iccid      (command, reply prefix or None for a bare line)
#   cell       serving-cell command reporting RSRP/RSRQ/SINR, or None
#   cell_scale divisor for RSRQ/RSRP/RSSI in the +CPSI LTE answer
#              (SIM7600/A7670 report tenths of dB, SIM7080 whole dB)
#   sinr       how to turn the +CPSI RSSNR field into SINR dB:
#              "db" (already dB) or "2x-20" (SIM7600 manual: SINR = 2*RSSNR - 20)
#   auth       PDP authentication command for context 1, or None;
#              "%T" = 0 none / 1 PAP / 2 CHAP, "%U" user, "%P" password
#   pin_tries  (command, prefix) reporting PIN tries left; no PIN is sent
#              when fewer than 3 are left (an earlier boot or tool got it wrong)
# Uncertain entries are marked UNVERIFIED: they come from vendor manuals and
# LilyGO examples, not from a modem on the bench.
MODELS = {  # type: dict
    "sim7600": {
        "match": ("SIM7600", "SIM7500"),
        "iccid": ("AT+CICCID", "+ICCID:"),
        "cell": "AT+CPSI?",
        "cell_scale": 10,
        "sinr": "2x-20",  # UNVERIFIED
        "auth": 'AT+CGAUTH=1,%T,"%P","%U"',  # password before user (SIM7500/7600 manual)
        "pin_tries": ("AT+SPIC", "+SPIC:"),  # +SPIC: <pin1 left>,<puk1 left>,<pin2>,<puk2>
    },
    "sim7080": {
        "match": ("SIM7080", "SIM7070", "SIM7000"),
        "iccid": ("AT+CCID", None),
        "cell": "AT+CPSI?",
        "cell_scale": 1,  # UNVERIFIED: Cat-M/NB answers show whole dB
        "sinr": "db",
        "auth": None,  # its own stack uses AT+CNCFG; for PPP, network.PPP does PAP/CHAP
        "pin_tries": ("AT+SPIC", "+SPIC:"),  # UNVERIFIED on SIM7080
    },
    "a7670": {
        "match": ("A7670", "A7672", "A7608", "SIM7670"),
        "iccid": ("AT+CICCID", "+ICCID:"),
        "cell": "AT+CPSI?",
        "cell_scale": 10,  # UNVERIFIED
        "sinr": "db",  # UNVERIFIED
        "auth": 'AT+CGAUTH=1,%T,"%U","%P"',  # UNVERIFIED order (A76XX manual: user, password)
        "pin_tries": ("AT+SPIC", "+SPIC:"),  # UNVERIFIED on A76XX
    },
}
MODEL_ORDER = ("sim7600", "sim7080", "a7670")

# Default timeouts in ms; a caller may override any key.
TIMEOUTS = {
    "cmd": 3000,  # one ordinary command
    "opt": 1000,  # a command we can do without (ATE0, CGMM, CPSI...), and the liveness AT
    "handshake": 15000,  # AT until OK after power-up (RDY takes ~10 s on SIM7600)
    "sim": 10000,  # SIM busy / not ready yet
    "pin": 10000,  # AT+CPIN="...": the SIM itself answers, slowly
    "reg": 90000,  # network registration
    "poll": 2000,  # between registration polls
    "dial": 30000,  # ATD*99# until CONNECT
    "attach": 75000,  # AT+CGATT=0 / =1 each (SIMCom manuals: 75 s max response), pdp_attach.py
    "silent": 2,  # consecutive timed-out commands before giving up ("no_response")
}


def detect_model(cgmm):
    """Model key for an AT+CGMM answer, or None."""
    up = (cgmm or "").upper()
    for key in MODEL_ORDER:
        for m in MODELS[key]["match"]:
            if m in up:
                return key
    return None
