"""Feature core: pure, vectorised NumPy/SciPy kernels for whole cohorts (sleep metrics, regularity, sleep
need and debt, HRV, resting heart rate, baselines, recovery, roster features) and the daily feature job.

Kernels take arrays and return arrays or small frozen dataclasses; only `features.job` touches the database.
May import: `store` (job only).
"""
