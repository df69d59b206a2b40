# Runs first on every boot: nothing that can fail here (the REPL must come up).
import gc

gc.collect()
