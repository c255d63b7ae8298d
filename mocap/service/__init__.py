"""``mocap serve``: an HTTP service that runs capture jobs (FastAPI + uvicorn).

Modules, each imported when used (``import mocap.service`` imports nothing heavy):

- :mod:`mocap.service.store`: SQLite (WAL) job and API-key tables, job folders, retention.
- :mod:`mocap.service.auth`: API keys (salted scrypt hashes), verification, rate limits.
- :mod:`mocap.service.worker`: the worker pool; each job runs in its own child process.
- :mod:`mocap.service.app`: ``create_app(ServiceConfig)``, the FastAPI application.
- :mod:`mocap.service.server`: ``serve_main(argv)``, the ``mocap serve`` command.

Needs the ``service`` extra (fastapi, uvicorn, python-multipart): ``pip install 'mocap-lift[service]'``.
"""
