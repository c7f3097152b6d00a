"""The probes of ``suites/performance/``: ``suites/performance/test_X.py`` uses
``postdeploy.performance.X``."""
