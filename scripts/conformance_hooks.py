"""Schemathesis hooks for scripts/api-conformance: generators for the document's custom formats.

`rsa-public-key-pem` is a real key, not a pattern: no regular expression describes a valid RSA
modulus, so the run draws from the test fixtures' keys (public keys, no secret in them).
"""

from pathlib import Path

import schemathesis
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

schemathesis.openapi.format(
    "rsa-public-key-pem",
    st.sampled_from([(FIXTURES / "rsa2048.pub.pem").read_text()]),
)
