"""Named hyperparameter studies for SidAE: Optuna objectives scheduled by Ray Tune, stored in
SQL. Entry point: `python studies/run.py --study w-sweep` (see --help)."""
