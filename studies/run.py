"""Run a named SidAE hyperparameter study: `python studies/run.py --study w-sweep`.

A script path for `python studies/run.py`; the code is studies/cli/run.py (also
`python -m studies.cli.run` and the `sidae-study` command)."""

import sys

from studies.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
