"""The test suite.

`make test` runs two tests at a time on two cores, so a test's torch threads (2 in this process,
torch's choice in a `sidae.train` it starts) rarely have both cores. libgomp's threads then spin
at each parallel region's barrier for a core the other test holds: beside one busy process, a
two-thread `sidae.train` took 115 s instead of 28 s. Waiting passively removes that (a blocked
thread sleeps); on idle cores it costs small two-thread steps up to a third of their speed, so it
is the suite's setting, not the product's (benchmarks/README.md, "Threads that spin while another
test holds the core"). libgomp reads it once, when torch loads it: hence here, before any test
module imports torch; every command a test starts inherits it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
