"""An entry module for the preloaded Python in tests: `main()` writes what a forked child sees
(argv, environment, session, parent, a random draw, the startup clock) to the file named by its
first argument, then exits with the code given as the second."""

from __future__ import annotations

import json
import os
import random
import sys
import time


def main() -> None:
    from modelport.engine import startup

    out, code = sys.argv[1], int(sys.argv[2])
    seen = {
        "argv": sys.argv[1:],
        "env": dict(os.environ),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "sid": os.getsid(0),
        "random": random.random(),
        "clock_age_s": time.time() - startup._created,
        "torch_imported": "torch" in sys.modules,
    }
    with open(out, "w") as f:
        json.dump(seen, f)
    print("probe wrote", out)
    sys.exit(code)
