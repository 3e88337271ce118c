"""Exports: anonymisation of research exports (keyed pseudonyms, generalised quasi-identifiers, programme
days instead of dates), the independent privacy checker, the data-package writer and the hash-chained ledger.

May import: `features`, `risk`, `store`.
"""
