"""The probes of ``suites/monitoring/``: ``suites/monitoring/test_X.py`` uses
``postdeploy.monitoring.X``."""
