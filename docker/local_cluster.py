"""The loopback cluster (`up`, `submit`, `down`): a script path for studies/cluster/local.py,
also `python -m studies.cluster.local`."""

import sys

from studies.cluster.local import main

if __name__ == "__main__":
    sys.exit(main())
