"""Models: the vectorised three-process model of alertness (FIPS parameters), duty exposure, the
scikit-learn sleepiness model with its persistence, and the model job.

May import: `features`, `store` (job only).
"""
