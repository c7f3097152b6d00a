"""The production shape's edge: nginx terminating TLS in front of the app instances.

:func:`render_config` writes a self-contained nginx.conf for ``nginx -p PREFIX -c CONF``: pid
file, temp folders and logs all under the prefix (nothing root-only), ``daemon off`` so the
platform's supervisor owns the master process. It serves Mozilla's *intermediate* TLS
configuration (weakened by the ``weak_tls`` fault, as the single-process shape is), balances
round-robin over the instances, passes ``X-Forwarded-For``/``X-Forwarded-Proto``, and routes a
request carrying ``X-Postdeploy-Instance: N`` to instance N only - the way Fly.io's proxy
honours ``fly-force-instance-id`` - so checks can address each instance through the edge.

The edge is also a shared cache, as a CDN in front of an app is: ``proxy_cache`` in the prefix
stores a ``GET``/``HEAD`` answer only when the upstream gives it explicit freshness a shared
cache may use (``max-age``, ``s-maxage`` or ``Expires``; never ``no-store``, ``no-cache``,
``private`` or a ``Set-Cookie``; ``Vary`` honoured) - nginx's own reading of those headers,
with no ``proxy_cache_valid`` so nothing is cached on a default lifetime. The key is method,
host and URI, like a CDN's: neither ``Authorization`` nor ``Cookie`` is part of it, which is
exactly why an answer carrying one user's data marked ``public`` reaches the next user (the
``private_cacheable`` fault, caught by the two-client edge check). A request addressed to one
instance bypasses the cache (it must reach that instance). ``X-Cache-Status`` says HIT, MISS,
BYPASS..., as a CDN's ``CF-Cache-Status`` does. :func:`purge_cache` empties it (the platform
does after every release and rollback, as Netlify and Vercel purge their edge on deploy).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from postdeploy.local.tls_profiles import INTERMEDIATE_CIPHERS

#: The request header the edge routes on (value: an instance id, "1", "2", ...).
INSTANCE_HEADER = "X-Postdeploy-Instance"
#: nginx's variable for that header.
_INSTANCE_VAR = "$http_" + INSTANCE_HEADER.lower().replace("-", "_")
#: Mozilla intermediate: TLS 1.2 and 1.3, these groups.
INTERMEDIATE_PROTOCOLS = "TLSv1.2 TLSv1.3"
INTERMEDIATE_CURVES = "X25519:prime256v1:secp384r1"
#: The ``weak_tls`` fault: a terminator still configured for legacy clients.
LEGACY_PROTOCOLS = "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"
#: Failures before the edge stops sending to an instance for a while: never. A rolling release
#: stops each instance in turn; an instance marked down after its restart would leave no live
#: upstream while the next one restarts (502s). A refused connection is retried on the next
#: instance at once instead (proxy_next_upstream), which costs nothing.
MAX_FAILS = 0
#: The app judges request sizes itself (its 413 is part of the contract), not the edge.
CLIENT_MAX_BODY = "16m"
HEADER_BUFFERS = "4 64k"
UPSTREAM_KEEPALIVE = 16
CONFIG_TEST_TIMEOUT_S = 10.0
#: The shared cache: folder in the prefix, zone name and sizes, and how long an entry nobody
#: asks for is kept (its freshness comes from the upstream's headers, never from here).
CACHE_DIR = "cache"
CACHE_ZONE = "edge_cache"
CACHE_KEYS_SIZE = "10m"
CACHE_MAX_SIZE = "256m"
CACHE_INACTIVE = "10m"
#: What a CDN keys on: method, host and URI - not Authorization, not Cookie.
CACHE_KEY = "$request_method $scheme://$host$request_uri"
#: The response header that tells whether the edge's cache served the answer.
CACHE_STATUS_HEADER = "X-Cache-Status"
ACCESS_LOG = "access.log"
ERROR_LOG = "error.log"
#: The access log: what a platform's edge logs (no request ids: those are the app's to log).
LOG_FORMAT = (
    '$time_iso8601 $remote_addr "$request" $status $body_bytes_sent '
    "upstream=$upstream_addr rt=$request_time"
)


@dataclass(frozen=True)
class Edge:
    """Where the edge listens and what it forwards to."""

    prefix: Path
    host: str
    port: int
    cert_file: Path
    key_file: Path
    instances: dict[str, int]  # instance id -> port on 127.0.0.1
    weak_tls: bool = False

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def cache_dir(self) -> Path:
        return self.prefix / CACHE_DIR

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / ACCESS_LOG

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / ERROR_LOG


def _upstream(name: str, ports: Sequence[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails={MAX_FAILS};" for port in ports)
    return f"    upstream {name} {{\n{servers}\n        keepalive {UPSTREAM_KEEPALIVE};\n    }}\n"


def render_config(edge: Edge) -> str:
    protocols = LEGACY_PROTOCOLS if edge.weak_tls else INTERMEDIATE_PROTOCOLS
    ciphers = LEGACY_CIPHERS if edge.weak_tls else INTERMEDIATE_CIPHERS
    upstreams = _upstream("app_all", list(edge.instances.values())) + "".join(
        _upstream(f"app_{iid}", [port]) for iid, port in edge.instances.items()
    )
    routes = "\n".join(f'        "{iid}" app_{iid};' for iid in edge.instances)
    temp = edge.prefix / "temp"
    return f"""# Generated by postdeploy (postdeploy/local/nginx.py) for the production shape.
daemon off;
master_process on;
worker_processes 1;
pid {edge.prefix / "nginx.pid"};
error_log {edge.error_log} warn;
events {{ worker_connections 512; }}

http {{
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    log_format edge '{LOG_FORMAT}';
    access_log {edge.access_log} edge;
    server_tokens off;
    client_max_body_size {CLIENT_MAX_BODY};
    large_client_header_buffers {HEADER_BUFFERS};
    default_type application/octet-stream;
    # the shared cache: freshness only from the upstream's headers, no default lifetime
    proxy_cache_path {edge.cache_dir} levels=1:2 keys_zone={CACHE_ZONE}:{CACHE_KEYS_SIZE}
                     max_size={CACHE_MAX_SIZE} inactive={CACHE_INACTIVE} use_temp_path=off;

{upstreams}
    # {INSTANCE_HEADER}: N routes to instance N only (as fly-force-instance-id does)
    map {_INSTANCE_VAR} $instance_upstream {{
        "" app_all;
{routes}
        default unknown;
    }}

    server {{
        listen {edge.host}:{edge.port} ssl;
        ssl_certificate {edge.cert_file};
        ssl_certificate_key {edge.key_file};
        ssl_protocols {protocols};
        ssl_ciphers {ciphers};
        ssl_ecdh_curve {INTERMEDIATE_CURVES};
        ssl_prefer_server_ciphers off;
        ssl_session_timeout 1d;
        ssl_session_cache shared:EdgeTLS:10m;
        ssl_session_tickets off;

        location / {{
            default_type application/json;
            if ($instance_upstream = unknown) {{
                return 421 '{{"error": {{"code": "unknown_instance", "message": "{INSTANCE_HEADER} names no instance of this deployment"}}}}';
            }}
            proxy_pass http://$instance_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header {INSTANCE_HEADER} "";
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            proxy_cache {CACHE_ZONE};
            proxy_cache_key "{CACHE_KEY}";
            proxy_cache_bypass {_INSTANCE_VAR};
            proxy_no_cache {_INSTANCE_VAR};
            add_header {CACHE_STATUS_HEADER} $upstream_cache_status always;
        }}
    }}
}}
"""  # noqa: E501 - nginx's return line is one string


def write(edge: Edge) -> Path:
    """Write the prefix (conf, logs, temp folders, an empty cache); returns the config file."""
    for folder in (edge.prefix / "logs", edge.prefix / "temp", edge.cache_dir):
        folder.mkdir(parents=True, exist_ok=True)
    purge_cache(edge.prefix)  # what an earlier deployment's edge stored is not this one's
    edge.conf.write_text(render_config(edge), encoding="utf-8")
    return edge.conf


def purge_cache(prefix: Path) -> None:
    """Empty the shared cache of the edge at ``prefix``, also while nginx runs: an entry whose
    file is gone is a miss to nginx (it fetches and stores again), so removing the files is a
    complete purge."""
    cache_dir = prefix / CACHE_DIR
    if cache_dir.is_dir():
        for entry in cache_dir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def argv(binary: str, edge: Edge) -> list[str]:
    return [binary, "-p", str(edge.prefix), "-c", str(edge.conf), "-e", str(edge.error_log)]


def test_config(binary: str, edge: Edge, env: dict[str, str]) -> None:
    """``nginx -t``: a config nginx rejects is an error naming nginx's own message."""
    done = subprocess.run(
        [*argv(binary, edge), "-t", "-q"], capture_output=True, text=True,
        timeout=CONFIG_TEST_TIMEOUT_S, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise ValueError(f"nginx rejects {edge.conf}: {done.stderr.strip()[-600:]}")
