"""The test suite's fixtures live in ``tests/fixtures/``, one module per concern; this file
only loads them (a plugin listed here is loaded at start-up, so its command-line options, such
as ``--session-provider``, are known when pytest parses the command line).

Most used: ``store`` runs a test once per backend (memory, filesystem, postgres, s3), and
``clock`` controls time. A service a test needs that is missing (PostgreSQL, S3 servers, Redis)
makes the test skip with the reason, except in CI (``CI`` set), where it fails.
"""

import pytest

pytest.register_assert_rewrite("fixtures")  # their asserts report like a test's

pytest_plugins = [
    "fixtures.environment",  # autouse: the library's environment variables cleared
    "fixtures.clock",  # clock
    "fixtures.postgres",  # postgres_url
    "fixtures.stores",  # store, astore, make_store, backend (BACKENDS)
    "fixtures.s3",  # moto_s3, moto_client, s3_bucket
    "fixtures.cloud",  # azurite, azure_container, gcs_emulator, gcs_bucket
    "fixtures.seaweedfs",  # seaweedfs, weed_bucket
    "fixtures.session_provider",  # --session-provider (autouse)
    "fixtures.gateway",  # serve, http, slow_put, writing
]
