"""Settings for the test suite: the real services, with Redis on a database of its own (15 by default) so a
test run never touches the queues or channel groups of a FlowNova running on the same machine."""

import os
import tempfile

# Metrics of every process of the test session (this one, the worker and its pool) in one folder.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # the worker inherits the folder of the test process
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="flownova-metrics-")
os.environ["REDIS_URL"] = os.environ.get("FLOWNOVA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

from flownova.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins; tests only

# `collectstatic` has not run for the test suite; WhiteNoise serves from the finders instead, and STATIC_ROOT
# falls back to Django's default (None), so WhiteNoise does not look for the folder collectstatic would fill.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
del STATIC_ROOT  # noqa: F821 (defined by the star import)

# Node types that only tests need (sleep, flaky, fail), loaded through the same plug-in setting users have.
FLOWNOVA_NODE_MODULES = ["tests.nodes", "tests.node_types"]
FLOWNOVA_RETRY_BACKOFF_SECONDS = 0.05
FLOWNOVA_LLM_BACKOFF_SECONDS = 0.05
FLOWNOVA_LLM_TOKEN_INTERVAL = 0.0  # every streamed piece becomes an event, so tests can count them
# The suite's local HTTP servers listen on 127.0.0.1; the worker may reach them. Tests of the forgery guard
# override this back to nothing.
FLOWNOVA_EGRESS_ALLOWLIST = ["127.0.0.1"]

# The test database is emptied between tests with TRUNCATE, which the ledger and the audit log refuse unless the
# session says it purges (runs migration 0006, projects migration 0003); tests of that refusal turn it off for
# their transaction.
DATABASES["default"].setdefault("OPTIONS", {})["options"] = (  # noqa: F405
    "-c flownova.ledger_purge=on -c flownova.audit_purge=on"
)
