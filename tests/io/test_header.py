"""Tests of evdet.io.header: header parsing and geometry resolution."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.header import (
    Header,
    geometry_from_header,
    geometry_from_sensor_name,
    parse_header,
    resolve_geometry,
)


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_parse_header_fields_and_size(tmp_path):
    text = b"% Date 2020-01-01 00:00:00\n% evt 3.0\n% plugin_name hal_plugin_gen41_evk3\n"
    path = _write(tmp_path, "a.raw", text + b"\x00\x80\x01\x60")
    header = parse_header(path)
    assert header.size == len(text)
    assert header.fields["evt"] == "3.0"
    assert header.get("PLUGIN_NAME") == "hal_plugin_gen41_evk3"
    assert header.evt_version == "3.0"
    assert header.lines[0] == "Date 2020-01-01 00:00:00"


def test_parse_header_stops_at_end_line(tmp_path):
    text = b"% evt 2.0\n% end\n"
    path = _write(tmp_path, "a.raw", text + b"%abc\n")  # binary data starting with '%' after '% end'
    header = parse_header(path)
    assert header.size == len(text)
    assert "abc" not in header.fields


def test_parse_header_non_ascii_free_text(tmp_path):
    header = parse_header(_write(tmp_path, "a.dat", "% Comment caf\u00e9\n% Height 5\n".encode("utf-8")))
    assert header.get("height") == "5" and header.lines[0].startswith("Comment caf")


def test_parse_header_no_header(tmp_path):
    header = parse_header(_write(tmp_path, "a.dat", b"\x01\x02\x03\x04"))
    assert header.size == 0 and header.lines == () and header.evt_version is None


def test_parse_header_unterminated_line_raises(tmp_path):
    path = _write(tmp_path, "a.dat", b"% Version 2")
    with pytest.raises(ValueError, match="byte offset 0"):
        parse_header(path)


def test_parse_header_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.dat"):
        parse_header(tmp_path / "nope.dat")


def test_evt_version_from_format_line():
    header = Header(fields={"format": "EVT3;height=720;width=1280"})
    assert header.evt_version == "3.0"
    assert Header(fields={"format": "EVT21;endianness=legacy"}).evt_version == "2.1"  # OpenEB's spelling
    assert Header(fields={"format": "EVT2.1"}).evt_version == "2.1"
    assert Header(fields={"format": "EVT2"}).evt_version == "2.0"


@pytest.mark.parametrize("fields, expected", [
    ({"Height": "240", "Width": "304"}, (240, 304)),
    ({"geometry": "1280x720"}, (720, 1280)),
    ({"format": "EVT3;height=720;width=1280"}, (720, 1280)),
    ({"Height": "240"}, None),
    ({"geometry": "bogus"}, None),
    ({}, None),
])
def test_geometry_from_header(fields, expected):
    assert geometry_from_header(Header(fields=fields)) == expected


@pytest.mark.parametrize("fields, expected", [
    ({"plugin_name": "hal_plugin_gen3_fx3"}, (480, 640)),
    ({"plugin_name": "hal_plugin_gen31_evk2"}, (480, 640)),
    ({"plugin_name": "hal_plugin_gen41_evk3"}, (720, 1280)),
    ({"plugin_name": "hal_plugin_imx636_evk4"}, (720, 1280)),
    ({"plugin_name": "hal_plugin_genx320_evk"}, (320, 320)),
    ({"sensor_generation": "4.1"}, (720, 1280)),
    ({"plugin_name": "some_unknown_camera"}, None),
    ({}, None),
])
def test_geometry_from_sensor_name(fields, expected):
    assert geometry_from_sensor_name(Header(fields=fields)) == expected


def test_resolve_geometry_priority_and_errors():
    header = Header(fields={"geometry": "640x480", "plugin_name": "hal_plugin_gen41_evk3"})
    assert resolve_geometry(header, None, None, "f") == (480, 640)        # header beats plugin name
    assert resolve_geometry(header, 10, 20, "f") == (10, 20)              # caller beats header
    plugin_only = Header(fields={"plugin_name": "hal_plugin_gen41_evk3"})
    assert resolve_geometry(plugin_only, None, None, "f") == (720, 1280)
    assert resolve_geometry(Header(), None, None, "f") is None
    with pytest.raises(ValueError, match="both height and width"):
        resolve_geometry(header, 10, None, "f")
    with pytest.raises(ValueError, match="positive"):
        resolve_geometry(header, 0, 5, "f")


def test_parse_header_stops_at_binary_line(tmp_path):
    # no '% end' and the first data byte is '%' (0x25): the binary data is not header text
    path = tmp_path / "a.raw"
    data = b"%\x00\x12\x34" * 4 + b"\n" + b"\x01\x02"
    path.write_bytes(b"% evt 3.0\n% geometry 1280x720\n" + data)
    header = parse_header(path)
    assert header.size == len(b"% evt 3.0\n% geometry 1280x720\n")
    assert header.lines == ("evt 3.0", "geometry 1280x720")


@pytest.mark.parametrize("geometry", ["99999999x1", "99999999x99999999", "1x16385"])
def test_resolve_geometry_refuses_absurd_geometry(geometry):
    with pytest.raises(ValueError, match=r"f\.raw: sensor geometry .* not plausible"):
        resolve_geometry(Header(fields={"geometry": geometry}), None, None, "f.raw")
    with pytest.raises(ValueError, match="not plausible"):
        resolve_geometry(Header(), 1, 99999999, "f.raw")
    assert resolve_geometry(Header(fields={"geometry": "16384x16384"}), None, None, "f") == (16384, 16384)


@pytest.mark.parametrize("geometry", ["0x480", "640x0", "640 by 480"])
def test_a_geometry_line_that_is_not_two_positive_sides_is_an_error(geometry):
    with pytest.raises(ValueError, match=rf"f\.raw: header line '% geometry {geometry}' is not WIDTHxHEIGHT"):
        resolve_geometry(Header(fields={"geometry": geometry}), None, None, "f.raw")


def test_raw_files_address_at_most_2048_pixels_per_side(tmp_path):
    # EVT 2.0 / 2.1 / 3.0 coordinates have 11 bits: a larger declared geometry is a corrupt header
    from evdet.io.raw import RawReader

    words = np.array([(8 << 28) | 0, (1 << 28) | (3 << 11) | 4], dtype=np.uint32)
    for side, ok in ((2048, True), (2049, False), (16384, False)):
        path = tmp_path / f"g{side}.raw"
        path.write_bytes(f"% evt 2.0\n% geometry {side}x{side}\n% end\n".encode() + words.tobytes())
        if ok:
            assert (RawReader(path).height, RawReader(path).width) == (side, side)
        else:
            pattern = f"g{side}.raw: sensor geometry {side}x{side} .* at most 2048"
            with pytest.raises(ValueError, match=pattern):
                RawReader(path)
