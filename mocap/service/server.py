"""``mocap serve``: run the HTTP service, and manage its API keys.

    mocap serve [--host 127.0.0.1] [--port 8000] [--data-dir DIR] [--workers 2] ...
    mocap serve keys create NAME [--data-dir DIR]     prints the new key once
    mocap serve keys list [--data-dir DIR]
    mocap serve keys revoke KEY_ID [--data-dir DIR]

Also runnable as ``python -m mocap.service.server ...`` (same arguments). The data
directory defaults to ``$MOCAP_DATA_DIR`` or ``~/.local/share/mocap-lift/service``.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path


def default_data_dir() -> Path:
    env = os.environ.get("MOCAP_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "mocap-lift" / "service"


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder of the database and job files (default: $MOCAP_DATA_DIR or "
                        "~/.local/share/mocap-lift/service)")


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mocap serve", description="Run the capture service over HTTP. "
                                "Manage API keys with: mocap serve keys {create,list,revoke}")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    _data_dir_arg(p)
    p.add_argument("--workers", type=int, default=2, help="jobs run at the same time (default 2)")
    p.add_argument("--max-upload-mb", type=float, default=500.0, help="largest job upload, MB (default 500)")
    p.add_argument("--max-upload-bytes", type=int, default=None, help=argparse.SUPPRESS)  # tests: tiny limits
    p.add_argument("--max-video-seconds", type=float, default=600.0, help="longest video, seconds (default 600)")
    p.add_argument("--rate-limit", type=float, default=600.0,
                   help="requests a minute per API key (default 600; 0: no limit)")
    p.add_argument("--body-timeout", type=float, default=10.0,
                   help="drop an upload that sends nothing for this many seconds, with 408 (default 10)")
    p.add_argument("--failed-auth-limit", type=float, default=20.0,
                   help="refused API keys a client address may send a minute before it gets 429 "
                        "(default 20; 0: no limit)")
    p.add_argument("--retention-days", type=float, default=30.0,
                   help="delete finished jobs older than this many days (default 30; 0: keep)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def _keys_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mocap serve keys", description="Manage the service's API keys.")
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create a key and print it (only this once)")
    c.add_argument("name", help="who or what the key is for")
    _data_dir_arg(c)
    _data_dir_arg(sub.add_parser("list", help="list the keys (ids and names, never the keys)"))
    r = sub.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("key_id")
    _data_dir_arg(r)
    return p


def _keys(argv: list[str]) -> int:
    from mocap.service.auth import create_key
    from mocap.service.store import Store

    args = _keys_parser().parse_args(argv)
    store = Store(args.data_dir or default_data_dir())
    try:
        if args.action == "create":
            key = create_key(store, args.name)
            print(key)
            print(f"(API key {key.split('_')[1]} for {args.name!r}: store it now, it cannot be shown again)",
                  file=sys.stderr)
        elif args.action == "list":
            for k in store.list_keys():
                created = datetime.fromtimestamp(k.created, timezone.utc).isoformat(timespec="seconds")
                print(f"{k.id}  {created}  {'revoked' if k.revoked else 'active '}  {k.name}")
        elif not store.revoke_key(args.key_id):
            print(f"mocap serve: error: no active key with id {args.key_id!r} (see: mocap serve keys list)",
                  file=sys.stderr)
            return 1
        else:
            print(f"key {args.key_id} revoked")
    finally:
        store.close()
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: WebSocket compression (permessage-deflate) for /v1/stream. Off: frames and poses are ~1.5 kB
#: of JSON at 30 fps, and compressing them on the event loop (server and client) cost more
#: latency than it saved (benchmarks/load_stream.py, docs/service.md). Clients need no change.
WS_PER_MESSAGE_DEFLATE = False

_KEY_IN_QUERY = re.compile(r"([?&]key=)[^&\s]*")


class RedactKeys(logging.Filter):
    """Hides ``?key=...`` (WebSocket clients that cannot send headers) in uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_KEY_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def serve_main(argv: list[str]) -> int:
    """``mocap serve ...``: run the service (uvicorn) or, with ``keys``, manage API keys."""
    if argv and argv[0] == "keys":
        try:
            return _keys(argv[1:])
        except ValueError as e:
            print(f"mocap serve: error: {e}", file=sys.stderr)
            return 1
    args = _serve_parser().parse_args(argv)
    try:
        import uvicorn

        from mocap.service.app import ServiceConfig, create_app
    except ImportError as e:
        print(f"mocap serve: error: {e.name or e} is not installed; install it with: pip install 'mocap-lift[service]'",
              file=sys.stderr)
        return 1
    if args.workers < 1 or not 0 < args.port < 65536 or not 0 < args.body_timeout <= 3600:
        print("mocap serve: error: --workers must be >= 1, --port in 1..65535 and --body-timeout in (0, 3600]",
              file=sys.stderr)
        return 1
    limit = args.max_upload_bytes if args.max_upload_bytes is not None else int(args.max_upload_mb * 1e6)
    config = ServiceConfig(data_dir=args.data_dir or default_data_dir(), workers=args.workers,
                           max_upload_bytes=limit, max_video_seconds=args.max_video_seconds,
                           rate_limit_per_minute=args.rate_limit, retention_days=args.retention_days,
                           body_timeout_s=args.body_timeout, failed_auth_per_minute=args.failed_auth_limit)
    try:
        app = create_app(config)
        app.state.pool.acquire_data_dir()
    except (ValueError, RuntimeError) as e:
        print(f"mocap serve: error: {e}", file=sys.stderr)
        return 1
    if not _is_loopback(args.host):
        print(f"mocap serve: warning: listening on {args.host}: API keys cross the network in clear text; "
              "put a TLS proxy (nginx, caddy) in front", file=sys.stderr)
    if not app.state.store.list_keys():
        print("mocap serve: no API key yet; create one with: mocap serve keys create NAME "
              f"--data-dir {config.data_dir}", file=sys.stderr)
    print(f"mocap serve: http://{args.host}:{args.port} (data in {app.state.store.data_dir}, "
          f"{config.workers} workers; API description at /docs)", file=sys.stderr)
    logging.getLogger("uvicorn.access").addFilter(RedactKeys())
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5,
                ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE)
    return 0


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
