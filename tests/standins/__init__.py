"""Local stand-ins of the platforms' APIs (and a fake flyctl) that the driver tests run against.

They follow the documented APIs - methods, paths, bearer auth, bodies, status codes, error
shapes - and keep state, so a rollback through a driver really changes what "serves".
"""
