import resource

from telephony.sip.ua import RESERVED_DESCRIPTORS, call_capacity


def test_capacity_is_bounded_by_the_port_range() -> None:
    assert call_capacity((20000, 20009)) == min(5, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def test_capacity_is_bounded_by_the_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (RESERVED_DESCRIPTORS + 100, hard))
    try:
        assert call_capacity((20000, 29999)) == 100
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
