"""Service: settings (the only module that reads the environment), the `fatigue` CLI, the HTTP API, the
scheduler and the embedded runtime for the demo.

May import everything; nothing imports `service`.
"""
