"""evdet.io.output_paths: an output never is, contains or lies inside an input; evdet replaces only what
it wrote, and only with overwrite."""

from __future__ import annotations

import os

import pytest

from evdet.io.output_paths import (
    MANIFEST_NAME,
    OutputPathError,
    check_output,
    check_outside_inputs,
    claim_outputs,
    output_folder,
    record_contents,
    record_output,
    written_by,
    written_by_evdet,
)


def test_outputs_overlapping_inputs_are_refused(tmp_path):
    rec = tmp_path / "ds" / "val" / "a.dat"
    rec.parent.mkdir(parents=True)
    rec.write_bytes(b"x")
    with pytest.raises(OutputPathError, match="is the input"):
        check_outside_inputs(rec, [rec])
    with pytest.raises(OutputPathError, match="contains the input"):
        check_outside_inputs(tmp_path / "ds", [rec])
    with pytest.raises(OutputPathError, match="lies inside the input folder"):
        check_outside_inputs(rec.parent / "dets", [rec.parent])
    link = tmp_path / "link.dat"
    os.symlink(rec, link)
    with pytest.raises(OutputPathError, match="is the input"):
        check_outside_inputs(link, [rec])  # a link to an input is the input
    check_outside_inputs(tmp_path / "ds" / "dets", [rec.parent])  # a sibling folder is fine


def test_only_evdet_outputs_are_replaced_and_only_with_overwrite(tmp_path):
    mine, foreign = tmp_path / "a_bbox.npy", tmp_path / "b_bbox.npy"
    mine.write_bytes(b"evdet")
    foreign.write_bytes(b"ground truth")
    record_output(mine, "evdet-detect")
    assert written_by_evdet(mine) and not written_by_evdet(foreign)
    assert (tmp_path / MANIFEST_NAME).read_text().splitlines()[-1] == "a_bbox.npy\tevdet-detect"
    with pytest.raises(OutputPathError, match="pass --overwrite"):
        check_output(mine)
    check_output(mine, overwrite=True)
    for overwrite in (False, True):
        with pytest.raises(OutputPathError, match="not written by evdet"):
            check_output(foreign, overwrite=overwrite)
    check_output(tmp_path / "new_bbox.npy")  # absent: fine


def test_overwrite_replaces_only_what_the_same_command_wrote(tmp_path):
    # the converter's copy of the ground truth is evdet's, but not evdet-detect's to replace
    gt, dets, old = tmp_path / "a_bbox.npy", tmp_path / "b_bbox.npy", tmp_path / "c_bbox.npy"
    for path, tool in ((gt, "evdet-generate-hdf5"), (dets, "evdet-detect"), (old, "evdet")):
        path.write_bytes(b"x")
        record_output(path, tool)
    assert [written_by(p) for p in (gt, dets, old, tmp_path / "none")] == [
        "evdet-generate-hdf5", "evdet-detect", "evdet", None]
    with pytest.raises(OutputPathError, match="a_bbox.npy was written by evdet-generate-hdf5: evdet-detect "
                                              "does not replace it, even with --overwrite"):
        check_output(gt, overwrite=True, tool="evdet-detect")
    check_output(dets, overwrite=True, tool="evdet-detect")
    check_output(old, overwrite=True, tool="evdet-detect")  # unnamed: any evdet command's
    check_output(gt, overwrite=True)  # no command named: any evdet output
    with pytest.raises(OutputPathError, match="evdet-demo-video does not replace"):
        claim_outputs([dets], tool="evdet-demo-video", overwrite=True)


def test_kinds_files_and_folders(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OutputPathError, match="is an existing file"):
        output_folder(tmp_path / "afile")
    with pytest.raises(OutputPathError, match="is an existing file, not a folder"):
        check_output(tmp_path / "afile" / "model.pt")
    with pytest.raises(OutputPathError, match="is an existing folder"):
        check_output(tmp_path / "adir")
    with pytest.raises(OutputPathError, match="output folder .* is an existing file"):
        check_output(tmp_path / "afile", folder=True)
    assert output_folder(tmp_path / "new" / "deep").is_dir()


def test_claim_records_nothing_unless_every_output_may_be_written(tmp_path):
    (tmp_path / "foreign.json").write_text("{}")
    with pytest.raises(OutputPathError):
        claim_outputs([tmp_path / "ok.json", tmp_path / "foreign.json"], tool="t")
    assert not (tmp_path / MANIFEST_NAME).exists()
    claim_outputs([tmp_path / "ok.json", tmp_path / "logs"], tool="t")
    assert written_by_evdet(tmp_path / "ok.json") and written_by_evdet(tmp_path / "logs")
    record_output(tmp_path / "ok.json", "t")  # recorded once
    assert (tmp_path / MANIFEST_NAME).read_text().count("ok.json") == 1


def test_output_path_error_is_a_value_error():
    assert issubclass(OutputPathError, ValueError)  # the apps map ValueError to exit status 2


@pytest.mark.parametrize("name", ["a\nb_bbox.npy", "a\tb.npy", "a\rb.npy", "a\u2028b.npy", "a\x0cb.npy"])
def test_names_that_would_forge_manifest_lines_are_refused(tmp_path, name):
    # "x\nvictim_bbox.npy" recorded as one line would list the user's victim_bbox.npy as evdet's
    victim = tmp_path / "b_bbox.npy"
    victim.write_bytes(b"ground truth")
    with pytest.raises(OutputPathError, match="line break or tab"):
        check_output(tmp_path / name)
    with pytest.raises(OutputPathError, match="line break or tab"):
        record_output(tmp_path / name, "evdet-detect")
    assert not written_by_evdet(victim)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_undecodable_names_round_trip_through_the_manifest(tmp_path):
    name = os.fsdecode(b"caf\xe9.npy")  # not UTF-8: a surrogate escape in Python
    (tmp_path / name).write_bytes(b"x")
    record_output(tmp_path / name, "t")
    assert written_by(tmp_path / name) == "t"
    assert not written_by_evdet(tmp_path / "caf\ufffd.npy")


def test_a_manifest_that_is_not_a_plain_file_is_refused(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("user data\n")
    linked, folder = tmp_path / "linked", tmp_path / "folder"
    linked.mkdir()
    folder.mkdir()
    os.symlink(outside, linked / MANIFEST_NAME)  # appending would write into outside.txt
    (folder / MANIFEST_NAME).mkdir()
    for where in (linked, folder):
        with pytest.raises(OutputPathError, match=f"{MANIFEST_NAME} is not a plain file"):
            record_output(where / "a.npy", "t")
        with pytest.raises(OutputPathError, match=f"{MANIFEST_NAME} is not a plain file"):
            check_output(where / "a.npy")
        with pytest.raises(OutputPathError, match=f"{MANIFEST_NAME} is not a plain file"):
            output_folder(where)
    assert outside.read_text() == "user data\n"


def test_a_folder_output_is_replaced_only_while_it_holds_nothing_but_what_evdet_wrote(tmp_path):
    # before: evdet-demo-video --overwrite replaced a PNG-frames folder as a whole, user files in it too
    frames = tmp_path / "frames"
    (frames / "sub").mkdir(parents=True)
    for name in ("frame_000000.png", "frame_000001.png", "sub/x.npy"):
        (frames / name).write_bytes(b"png")
    record_output(frames, "evdet-demo-video")
    record_contents(frames, "evdet-demo-video")
    check_output(frames, folder=True, overwrite=True, tool="evdet-demo-video")
    (frames / "sub" / "notes.txt").write_text("my notes")
    with pytest.raises(OutputPathError, match=r"sub/notes\.txt was not written by evdet: replacing .*frames "
                                              "would delete it"):
        check_output(frames, folder=True, overwrite=True, tool="evdet-demo-video")
    with pytest.raises(OutputPathError, match="pass --overwrite"):  # without overwrite: the usual refusal
        check_output(frames, folder=True, tool="evdet-demo-video")
    record_contents(frames, "evdet-demo-video")  # listed once each
    assert (frames / MANIFEST_NAME).read_text().count("frame_000000.png") == 1
