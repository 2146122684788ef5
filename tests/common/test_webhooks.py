"""tts_common.webhooks: where a callback may point (SSRF), the signature, the retry schedule."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tts_common.exceptions import InvalidCallbackUrl
from tts_common.webhooks import (
    BACKOFF_S,
    MAX_DELAY_S,
    backoff_delay,
    check_url,
    refusal,
    signature,
    signature_header,
    verify,
)

PRIVATE_V4 = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "192.0.0.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
PRIVATE_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "::/128"]


def _resolver(*addresses: str):
    return lambda host, port: list(addresses)


def _in(network: str):
    net = ipaddress.ip_network(network)
    return st.integers(min_value=int(net.network_address), max_value=int(net.broadcast_address)).map(
        lambda n: ipaddress.IPv6Address(n) if net.version == 6 else ipaddress.IPv4Address(n)
    )


ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


def _mapped(address: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"::ffff:{address}")


# -- SSRF classification ------------------------------------------------------------------------------------


@given(st.sampled_from(PRIVATE_V4).flatmap(_in))
def test_every_private_loopback_link_local_or_reserved_ipv4_address_is_refused(address):
    assert refusal(address, allow_loopback=False) is not None


@given(st.sampled_from(PRIVATE_V6).flatmap(_in))
def test_every_non_public_ipv6_address_is_refused(address):
    assert refusal(address, allow_loopback=False) is not None


@given(ipv4s)
def test_an_ipv6_mapped_address_is_judged_as_the_ipv4_address_it_carries(address):
    for form in (_mapped(address), ipaddress.IPv6Address(f"64:ff9b::{address}")):
        assert (refusal(form, allow_loopback=False) is None) == (
            refusal(address, allow_loopback=False) is None
        )
        assert (refusal(form, allow_loopback=True) is None) == (refusal(address, allow_loopback=True) is None)


_LISTED_V4 = [ipaddress.ip_network(n) for n in PRIVATE_V4]


@given(ipv4s)
def test_an_ipv4_address_passes_exactly_when_it_is_global_unicast(address):
    public = address.is_global and not any(address in n for n in _LISTED_V4)
    assert (refusal(address, allow_loopback=False) is None) == public


@given(st.sampled_from(PRIVATE_V4 + PRIVATE_V6).flatmap(_in))
def test_allowing_loopback_admits_loopback_only(address):
    allowed = refusal(address, allow_loopback=True) is None
    assert allowed == address.is_loopback


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"])
def test_the_metadata_address_is_refused_even_when_loopback_is_allowed(address):
    assert "metadata" in (refusal(ipaddress.ip_address(address), allow_loopback=True) or "")


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"])
def test_public_addresses_pass(address):
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) is None


# -- check_url ----------------------------------------------------------------------------------------------


def test_a_public_https_url_is_checked_to_the_address_it_resolved_to():
    target = check_url(
        "https://hooks.example.com:8443/tts?x=1", allow_loopback=False, resolver=_resolver("93.184.216.34")
    )
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "hooks.example.com",
        8443,
        "/tts?x=1",
        "93.184.216.34",
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/hook", "address"),
        ("http://169.254.169.254/latest/meta-data", "address"),
        ("https://[::1]/hook", "address"),
        ("https://[::ffff:127.0.0.1]/hook", "address"),
        ("https://[fd00:ec2::254]/", "address"),
        ("http://93.184.216.34/hook", "scheme"),
        ("ftp://93.184.216.34/hook", "scheme"),
        ("https://user:pw@93.184.216.34/hook", "malformed"),
        ("https://93.184.216.34/hook#frag", "malformed"),
        ("https:///nohost", "malformed"),
        ("https://93.184.216.34:99999/", "malformed"),
        ("https://93.184.216.34/" + "a" * 2100, "malformed"),
    ],
)
def test_refused_urls_say_why(url, reason):
    with pytest.raises(InvalidCallbackUrl) as refused:
        check_url(url, allow_loopback=False, resolver=_resolver())
    assert refused.value.reason == reason
    assert refused.value.code == "invalid_callback_url"


def test_a_name_with_any_private_answer_is_refused():
    with pytest.raises(InvalidCallbackUrl, match=r"10\.1\.2\.3"):
        check_url(
            "https://mixed.example/", allow_loopback=False, resolver=_resolver("93.184.216.34", "10.1.2.3")
        )


def test_a_name_resolving_to_loopback_is_refused_unless_allowed():
    resolve = _resolver("127.0.0.1")
    with pytest.raises(InvalidCallbackUrl, match="loopback"):
        check_url("http://localhost:9000/hook", allow_loopback=False, resolver=resolve)
    target = check_url("http://localhost:9000/hook", allow_loopback=True, resolver=resolve)
    assert (target.scheme, target.address, target.port) == ("http", "127.0.0.1", 9000)


def test_http_is_allowed_only_to_loopback_even_when_loopback_is_allowed():
    with pytest.raises(InvalidCallbackUrl) as refused:
        check_url("http://public.example/", allow_loopback=True, resolver=_resolver("93.184.216.34"))
    assert refused.value.reason == "scheme"


def test_a_name_that_does_not_resolve_is_refused():
    def fail(host, port):
        raise OSError("nodename nor servname provided")

    with pytest.raises(InvalidCallbackUrl) as refused:
        check_url("https://nowhere.invalid/", allow_loopback=False, resolver=fail)
    assert refused.value.reason == "dns_failure"


# -- signature ----------------------------------------------------------------------------------------------

BODY = b'{"data":{"status":"done"},"id":"evt_x_done"}'


def test_a_signature_verifies_with_its_secret_and_fails_with_any_change():
    header = signature_header(["whsec_a"], 1_700_000_000, BODY)
    assert header == f"t=1700000000,v1={signature('whsec_a', 1_700_000_000, BODY)}"
    assert verify(BODY, header, "whsec_a", now=1_700_000_010)
    assert not verify(BODY + b" ", header, "whsec_a", now=1_700_000_010)
    assert not verify(BODY, header, "whsec_b", now=1_700_000_010)
    assert not verify(BODY, header.replace("t=1700000000", "t=1700000001"), "whsec_a", now=1_700_000_010)


def test_an_old_timestamp_is_refused():
    header = signature_header(["whsec_a"], 1_700_000_000, BODY)
    assert not verify(BODY, header, "whsec_a", now=1_700_000_000 + 301)
    assert verify(BODY, header, "whsec_a", now=1_700_000_000 + 300)


def test_during_a_rotation_both_secrets_verify():
    header = signature_header(["whsec_new", "whsec_old"], 1_700_000_000, BODY)
    assert header.count("v1=") == 2
    assert verify(BODY, header, "whsec_new", now=1_700_000_000)
    assert verify(BODY, header, "whsec_old", now=1_700_000_000)


@given(st.binary(max_size=512), st.text(min_size=1, max_size=64), st.integers(0, 2**40))
def test_hmac_sha256_over_timestamp_dot_body(body, secret, t):
    import hashlib
    import hmac

    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature(secret, t, body) == expected
    assert verify(body, signature_header([secret], t, body), secret, now=t)


# -- backoff ------------------------------------------------------------------------------------------------


def test_the_backoff_schedule_grows_then_stays_at_its_cap():
    middle = [backoff_delay(n, rand=lambda: 0.5) for n in range(1, 10)]
    assert middle == [*BACKOFF_S, BACKOFF_S[-1], BACKOFF_S[-1]]
    assert middle == sorted(middle)


@given(st.integers(1, 1000), st.floats(0, 1, exclude_max=True), st.floats(0.01, 1))
def test_a_delay_is_within_20_percent_of_the_schedule_and_never_beyond_sqs_limit(n, r, scale):
    delay = backoff_delay(n, scale=scale, rand=lambda: r)
    base = BACKOFF_S[min(n, len(BACKOFF_S)) - 1] * scale
    assert 0 <= delay <= MAX_DELAY_S
    assert round(base * 0.8) - 1 <= delay <= round(base * 1.2) + 1


def test_the_local_scale_makes_the_schedule_seconds():
    assert [backoff_delay(n, scale=0.1, rand=lambda: 0.5) for n in (1, 2, 3)] == [1, 3, 6]


# -- the README's receiver snippet --------------------------------------------------------------------------


def readme_verifier():
    """`verify_signature` from the README's webhook receiver snippet, exactly as a user would paste it."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "# webhook_receiver.py" in b]
    namespace: dict = {}
    exec(compile(code, "README.md#webhook_receiver.py", "exec"), namespace)
    return namespace["verify_signature"]


def test_the_readme_snippet_verifies_what_the_notifier_signs():
    import time

    verify_signature = readme_verifier()
    now = int(time.time())
    header = signature_header(["whsec_new", "whsec_old"], now, BODY)
    assert verify_signature(BODY, header, "whsec_new")
    assert verify_signature(BODY, header, "whsec_old")
    assert not verify_signature(BODY, header, "whsec_other")
    assert not verify_signature(BODY + b"x", header, "whsec_new")
    assert not verify_signature(BODY, signature_header(["whsec_new"], now - 301, BODY), "whsec_new")
    assert not verify_signature(BODY, "v1=" + signature("whsec_new", now, BODY), "whsec_new")
