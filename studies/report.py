"""Write a study's report: `python studies/report.py --name w-sweep-mnist --out reports/w-sweep`.

A script path for `python studies/report.py`; the code is studies/cli/report.py (also
`python -m studies.cli.report` and the `sidae-report` command)."""

import sys

from studies.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
