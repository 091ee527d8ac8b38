"""Browse the stored studies in optuna-dashboard: `python studies/dashboard.py`.

A script path for `python studies/dashboard.py`; the code is studies/cli/dashboard.py (also
`python -m studies.cli.dashboard` and the `sidae-dashboard` command)."""

import sys

from studies.cli.dashboard import main

if __name__ == "__main__":
    sys.exit(main())
