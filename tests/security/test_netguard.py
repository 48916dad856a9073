"""Address checks: every spelling of an internal address is blocked."""

import ipaddress
import socket

import pytest

from app.netguard import (
    Allowlist,
    BlockedAddressError,
    UnresolvableHostError,
    blocked_reason,
    checked_addresses,
    literal_address,
)

INTERNAL_HOSTS = [
    "127.0.0.1",
    "2130706433",
    "0x7f.1",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "127.0.1",
    "[::1]",
    "::1",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",
    "[0:0:0:0:0:ffff:7f00:1]",
    "0.0.0.0",
    "0",
    "[::]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "100.100.100.200",
    "169.254.169.254",
    "fd00:ec2::254",
    "[fe80::1%25eth0]",
    "224.0.0.1",
    "[ff02::1]",
    "255.255.255.255",
    "2002:7f00:1::",
    "64:ff9b::a00:1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
]


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_internal_literal_is_blocked(host):
    address = literal_address(host)
    assert address is not None
    assert blocked_reason(address) is not None
    with pytest.raises(BlockedAddressError, match="DISTILGATE_WEBHOOK_ALLOW_HOSTS"):
        checked_addresses(host, 80, Allowlist())


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "localhost"])
def test_name_resolving_to_loopback_is_blocked(host):
    with pytest.raises(BlockedAddressError, match=r"resolves to 127\.0\.0\.1"):
        checked_addresses(host, 80, Allowlist())


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "93.184.215.14"])
def test_public_address_passes(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_allowlisted_network_admits_loopback():
    allow = Allowlist.parse(["127.0.0.0/8"])
    assert checked_addresses("127.0.0.1", 80, allow) == [
        ipaddress.ip_address("127.0.0.1")
    ]
    with pytest.raises(BlockedAddressError):
        checked_addresses("10.0.0.1", 80, allow)


def test_allowlisted_name_admits_its_addresses():
    allow = Allowlist.parse(["LocalHost"])
    assert ipaddress.ip_address("127.0.0.1") in checked_addresses(
        "localhost", 80, allow
    )
    with pytest.raises(BlockedAddressError):
        checked_addresses("127.0.0.1", 80, allow)


def test_allowlist_rejects_bad_network():
    with pytest.raises(ValueError, match="'10.0.0.0/33' in DISTILGATE_WEBHOOK"):
        Allowlist.parse(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="empty entry"):
        Allowlist.parse([" "])


def test_unresolvable_name_raises(monkeypatch):
    def no_answer(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    with pytest.raises(UnresolvableHostError, match="cannot be resolved"):
        checked_addresses("missing.test", 80, Allowlist())


def test_one_internal_answer_blocks_the_name(monkeypatch):
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    with pytest.raises(BlockedAddressError, match="127.0.0.1"):
        checked_addresses("mixed.test", 80, Allowlist())
