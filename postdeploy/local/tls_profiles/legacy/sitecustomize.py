"""The `weak_tls` fault's TLS terminator: lets server contexts accept TLS 1.0 and 1.1 again.

Only on the ``PYTHONPATH`` of a local release deployed with the ``weak_tls`` fault (see
``postdeploy.local.platform.server_options``). Python's ``ssl`` module pins the minimum
protocol of every server context to TLS 1.2, overriding OpenSSL's ``MinProtocol`` (set in
``../legacy.cnf``), and uvicorn has no option for it; this restores what an old terminator
configured with ``MinProtocol = TLSv1`` would do. It changes nothing unless
``POSTDEPLOY_TLS_MINIMUM_VERSION`` names a version.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

MINIMUM_VERSION_ENV = "POSTDEPLOY_TLS_MINIMUM_VERSION"
_load_cert_chain = ssl.SSLContext.load_cert_chain


def _legacy_load_cert_chain(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
    version = os.environ.get(MINIMUM_VERSION_ENV, "")
    if version and self.protocol == ssl.PROTOCOL_TLS_SERVER:
        self.minimum_version = ssl.TLSVersion[version]
        # Python also forbids client-initiated renegotiation; OpenSSL's ClientRenegotiation
        # option (legacy.cnf) only takes effect without this flag.
        self.options &= ~ssl.OP_NO_RENEGOTIATION
    _load_cert_chain(self, *args, **kwargs)


if os.environ.get(MINIMUM_VERSION_ENV):
    ssl.SSLContext.load_cert_chain = _legacy_load_cert_chain  # type: ignore[method-assign,assignment]
