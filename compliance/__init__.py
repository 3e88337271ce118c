"""Programme compliance (issue 21): who is not wearing the device, and telling them in time.

``kernel`` (pure arrays), ``rules`` (thresholds from the programme file), ``db`` and ``alerts`` (I/O),
``job`` (one incremental run), ``publisher`` (alert delivery), ``report_section`` (the weekly report's compliance
table, pure), ``metrics``.
"""
