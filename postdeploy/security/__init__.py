"""The probes of ``suites/security/``: ``suites/security/test_X.py`` uses
``postdeploy.security.X``."""
