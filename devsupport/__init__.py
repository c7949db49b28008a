"""Development support shared by the test suite, the bench, the fault suite and run-local.sh: real
processes on free ports (redis-server, OpenBao, Celery workers, gunicorn), waiting with deadlines,
and demo credentials (JWT keys and tokens). Never imported by `gateway` or `tasks`, never shipped in
the image."""
