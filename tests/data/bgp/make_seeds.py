#!/usr/bin/env python3
"""Writes fuzz_seeds/*.bin: the golden *.hex messages plus malformed and edge-case variants.

Re-run after editing; the seeds are committed so the tests need no Python.
"""
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "fuzz_seeds"


def h(text):
    text = re.sub(r"#[^\n]*", "", text)
    return bytes.fromhex("".join(text.split()))


def msg(mtype, body, length=None):
    n = 19 + len(body) if length is None else length
    return b"\xff" * 16 + n.to_bytes(2, "big") + bytes([mtype]) + body


def update(attrs, nlri="", withdrawn=""):
    w, a, n = h(withdrawn), h(attrs), h(nlri)
    return msg(2, len(w).to_bytes(2, "big") + w + len(a).to_bytes(2, "big") + a + n)


def attr(flags, code, value):
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, code, len(value)]) + value


ORIGIN = "40 01 01 00 "
AS_PATH4 = "40 02 06 02 01 0000fde9 "
AS_PATH2 = "40 02 04 02 01 fde9 "
NEXT_HOP = "40 03 04 c0000201 "
MP_V6 = "80 0e 1c 0002 01 10 20010db8000000000000000000000001 00 30 20010db80001 "


def seeds():
    for path in sorted(HERE.glob("*.hex")):
        yield "golden_" + path.stem, h(path.read_text())
    keepalive = h((HERE / "keepalive.hex").read_text())
    yield "keepalive_bad_marker", b"\xff" * 15 + b"\x7f" + keepalive[16:]
    yield "header_length_18", msg(4, b"", length=18)
    yield "header_length_4097", msg(3, bytes(4078))
    yield "route_refresh_long", msg(5, h("0001 00 01 00"))
    yield "open_bad_version", msg(1, h("03 fde9 005a 0a000001 00"))
    yield "open_params_mixed", msg(1, h("04 fde9 00b4 0a000002 14"
                                        "02 06 45 04 00010103  02 02 80 00  02 06 41 04 fa56ea01"))
    yield "update_origin_length", update("40 01 02 0000 " + AS_PATH4 + NEXT_HOP, "08 0a")
    yield "update_as_path_zero_segment", update(ORIGIN + "40 02 02 02 00 " + NEXT_HOP, "08 0a")
    yield "update_mp_reach_bad_next_hop", update("80 0e 11 0002 01 05 2001db8000 00 30 20010db80001 "
                                                 + ORIGIN + AS_PATH4)
    yield "update_mp_unreach_twice", update("80 0f 03 000201  80 0f 03 000201")
    yield "update_attribute_overrun", update(ORIGIN + AS_PATH4 + NEXT_HOP + "c0 08 08 fde90064",
                                             "08 0a")
    yield "update_as4_prepended_old", update(
        ORIGIN + "40 02 0a 02 04 fdf2 fde9 5ba0 fdea" + NEXT_HOP
        + "c0 11 0e 02 03 0000fde9 fa56ea01 0000fdea", "08 0a")
    yield "update_missing_as_path_mp", update(MP_V6 + "80 0f 05 0001 01 08 0b " + ORIGIN,
                                              "08 0a", "10 ac10")
    # Long AS_PATH and COMMUNITIES: Extended Length attributes.
    path = b"\x02\xff" + b"\x00\x00\xfd\xe9" * 255 + b"\x02\x2d" + b"\x00\x00\xfd\xea" * 45
    communities = b"".join((0xFDE90000 + i).to_bytes(4, "big") for i in range(70))
    yield "update_extended_length", update(
        (h(ORIGIN) + attr(0x40, 2, path) + h(NEXT_HOP) + attr(0xC0, 8, communities)).hex(), "08 0a")
    # Nearly full: ~1000 /24s.
    nlri = b"".join(b"\x18" + (0x0A0000 + i).to_bytes(3, "big") for i in range(1000))
    yield "update_packed_ipv4", update(ORIGIN + AS_PATH4 + NEXT_HOP, nlri.hex())
    # Every attribute, 2-octet session, confederation and set segments.
    everything = (ORIGIN + "40 02 10 03 01 fe4c 02 02 fde9 fdea 01 02 fdeb fdec " + NEXT_HOP
                  + "80 04 04 fffffffe  40 05 04 00000064  40 06 00  c0 07 06 fde9 0a000001"
                  + "c0 08 08 ffff0001 fde90007  80 09 04 0a000002  80 0a 08 0a000003 0a000004"
                  + "e0 10 08 0002fde900000001  c0 20 0c 0000fc00 00000001 00000002")
    yield "update_every_attribute", update(MP_V6 + everything, "1a 0a410000 18 c0a800", "10 0a01")
    yield "stream_four_messages", (keepalive + h((HERE / "open_capabilities.hex").read_text())
                                   + update(ORIGIN + AS_PATH2 + NEXT_HOP, "08 0a")
                                   + h((HERE / "notification_cease.hex").read_text()))


def main():
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.bin"):
        old.unlink()
    count = 0
    for name, data in seeds():
        (OUT / f"{name}.bin").write_bytes(data)
        count += 1
    print(f"wrote {count} seeds to {OUT}")


if __name__ == "__main__":
    main()
