"""Results files: the paper's format written row by row, resumed after a crash, read in both time formats."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from rs_plugin.results import (
    CERTIFY_COLUMNS,
    PREDICT_COLUMNS,
    RecordsWriter,
    ResultsError,
    ResultsWriter,
    format_row,
    format_time,
    parse_time,
    read_results,
    settings_difference,
    settings_path,
)

COHEN = Path(__file__).parent / "data" / "cohen2019" / "data" / "certify"
HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"


def row(idx: int, radius: float = 0.5, seconds: float = 1.25) -> dict:
    return {"idx": idx, "label": idx % 10, "predict": idx % 10, "radius": radius, "correct": 1, "time": seconds}


def test_rows_are_formatted_as_the_paper_prints_them():
    # certify.py: "{}\t{}\t{}\t{:.3}\t{}\t{}" with time = str(datetime.timedelta(seconds=...))
    assert format_row(row(0, 0.37812345, 15.4), CERTIFY_COLUMNS) == "0\t0\t0\t0.378\t1\t0:00:15.400000\n"
    assert format_row(row(20, 0.0, 0.5), CERTIFY_COLUMNS) == "20\t0\t0\t0.0\t1\t0:00:00.500000\n"
    assert format_row(row(3, 7.1134e-05, 2), CERTIFY_COLUMNS) == "3\t3\t3\t7.11e-05\t1\t0:00:02\n"
    assert format_row(row(4), PREDICT_COLUMNS) == "4\t4\t4\t1\t0:00:01.250000\n"


@pytest.mark.parametrize("seconds", [0.0, 0.5, 15.4, 151.238689, 3600 * 25 + 0.25, 86400 * 3])
def test_time_round_trips_through_the_paper_format(seconds):
    text = format_time(seconds)
    assert text == str(datetime.timedelta(seconds=seconds))
    assert parse_time(text) == pytest.approx(seconds, abs=1e-6)


def test_both_time_formats_of_the_released_logs_are_read():
    assert parse_time("15.4") == 15.4
    assert parse_time("0:02:31.238689") == pytest.approx(151.238689)
    assert parse_time("1 day, 2:00:00") == 93600
    with pytest.raises(ValueError, match="neither seconds nor"):
        parse_time("2 minutes")


def test_every_released_log_is_read():
    files = sorted(p for p in COHEN.rglob("sigma_*"))
    assert len(files) == 13
    for path in files:
        results = read_results(path)
        assert results.columns == CERTIFY_COLUMNS
        short = path.match("imagenet/resnet50/noise_0.25/test/sigma_0.25")  # sizes measured, see the README
        assert len(results) == (513 if "train" in path.parts else 427 if short else 500)
        assert np.all((results["radius"] >= 0) & (results["time"] > 0))
        assert np.all(results["correct"] == (results["predict"] == results["label"]))
        assert np.all(results["radius"][results["predict"] == -1] == 0)


def test_first_rows_of_both_time_formats_hold_the_printed_values():
    seconds = read_results(COHEN / "cifar10/resnet110/noise_0.25/test/sigma_0.25")
    assert (seconds["idx"][0], seconds["label"][0], seconds["predict"][0]) == (0, 3, 3)
    assert (seconds["radius"][0], seconds["time"][0]) == (0.378, 15.4)
    clock = read_results(COHEN / "imagenet/resnet50/noise_0.25/test/sigma_0.25")
    assert (clock["idx"][2], clock["predict"][2], clock["radius"][2]) == (200, 395, 0.0504)
    assert clock["time"][0] == pytest.approx(151.238689)


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        (HEADER + "0\t3\t3\t0.5\t1\t1.0\n1\t3\t3\t0.5\t1\n", ":3:", "expected 6 tab-separated fields"),
        (HEADER + "0\t3\t3\tbig\t1\t1.0\n", ":2:", "column 'radius'"),
        (HEADER + "0\t3\t3\t0.5\t1\tyesterday\n", ":2:", "column 'time'"),
        (HEADER + "0\t3\tthree\t0.5\t1\t1.0\n", ":2:", "column 'predict'"),
        ("idx,label,predict,radius,correct,time\n0,3,3,0.5,1,1.0\n", ":1:", "not a results file"),
        ("", ":1:", "empty file"),
    ],
)
def test_malformed_files_are_reported_with_file_and_line(tmp_path, content, where, what):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(ResultsError, match=what) as info:
        read_results(path)
    assert str(info.value).startswith(f"{path}{where}")


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "nope.tsv")


def test_extra_columns_and_blank_lines_are_accepted(tmp_path):
    path = tmp_path / "seq.tsv"
    path.write_text(HEADER.rstrip("\n") + "\tsamples\n0\t1\t1\t0.5\t1\t0:00:01\t2100\n\n")
    results = read_results(path)
    assert results["samples"].tolist() == [2100]
    with pytest.raises(KeyError, match="no column 'nothing'"):
        results["nothing"]


def test_a_new_file_gets_the_header_and_flushed_rows(tmp_path):
    path = tmp_path / "out.tsv"
    with ResultsWriter(path, CERTIFY_COLUMNS) as writer:
        assert writer.done == set()
        writer.write(row(0))
        assert path.read_text() == HEADER + format_row(row(0), CERTIFY_COLUMNS)  # flushed before close
    assert read_results(path)["idx"].tolist() == [0]


def test_resuming_skips_complete_rows_and_cuts_a_half_written_line(tmp_path):
    path = tmp_path / "out.tsv"
    complete = HEADER + format_row(row(0), CERTIFY_COLUMNS) + format_row(row(5), CERTIFY_COLUMNS)
    path.write_text(complete + "7\t7\t7\t0.")
    with ResultsWriter(path, CERTIFY_COLUMNS) as writer:
        assert writer.done == {0, 5}
        assert path.read_text() == complete
        writer.write(row(7))
    assert read_results(path)["idx"].tolist() == [0, 5, 7]


@pytest.mark.parametrize("partial", ["", "idx\tlab"])
def test_an_empty_file_or_a_half_written_header_starts_afresh(tmp_path, partial):
    path = tmp_path / "out.tsv"
    path.write_text(partial)
    with ResultsWriter(path, CERTIFY_COLUMNS) as writer:
        assert writer.done == set()
    assert path.read_text() == HEADER


def test_appending_to_a_file_of_other_columns_is_refused(tmp_path):
    path = tmp_path / "out.tsv"
    path.write_text("idx\tlabel\tpredict\tcorrect\ttime\n0\t1\t1\t1\t0:00:01\n")
    with pytest.raises(ResultsError, match="this run writes idx label predict radius"):
        ResultsWriter(path, CERTIFY_COLUMNS)
    assert path.read_text().startswith("idx\tlabel\tpredict\tcorrect")


def test_a_malformed_complete_row_stops_the_resume(tmp_path):
    path = tmp_path / "out.tsv"
    path.write_text(HEADER + "0\t1\t1\t0.5\t1\n" + format_row(row(1), CERTIFY_COLUMNS))
    with pytest.raises(ResultsError, match=":2: expected 6"):
        ResultsWriter(path, CERTIFY_COLUMNS)


def test_two_writers_cannot_write_one_file(tmp_path):
    pytest.importorskip("fcntl")
    path = tmp_path / "out.tsv"
    with ResultsWriter(path, CERTIFY_COLUMNS), pytest.raises(ResultsError, match="another process"):
        ResultsWriter(path, CERTIFY_COLUMNS)
    with ResultsWriter(path, CERTIFY_COLUMNS) as writer:  # released on close
        assert writer.done == set()


def test_closing_with_sort_orders_rows_by_index(tmp_path):
    path = tmp_path / "out.tsv"
    writer = ResultsWriter(path, CERTIFY_COLUMNS)
    for idx in (4, 0, 2):
        writer.write(row(idx))
    writer.close(sort=True)
    assert path.read_text() == HEADER + "".join(format_row(row(i), CERTIFY_COLUMNS) for i in (0, 2, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"]


# A user's file is never modified unless it is verifiably one this writer could have written.

FOREIGN = {
    "a note": b"my notes",
    "two lines, no newline at the end": b"line1\nline2",
    "two lines": b"line1\nline2\n",
    "a PREDICT file": b"idx\tlabel\tpredict\tcorrect\ttime\n0\t1\t1\t1\t0:00:01\n",
    "the header with another column": HEADER.replace("time", "time\tnote").encode(),
    "not UTF-8": b"\xff\xfe\x00i\x00d\x00x\n",
    "rows, then something that is not a row": (HEADER + "0\t3\t3\t0.5\t1\t0:00:01\nmy notes").encode(),
    "a row with an impossible value": (HEADER + "0\t3\t3\t-0.5\t1\t0:00:01\n").encode(),
}


@pytest.mark.parametrize("content", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_file_that_is_not_verifiably_ours_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ResultsError, match=f"^{path}"):
        ResultsWriter(path, CERTIFY_COLUMNS, settings={"n": 100})
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no settings record either


def test_a_file_that_is_ours_is_completed_without_losing_a_byte(tmp_path):
    """A header cut short gets the rest of it appended; a row cut short is the only thing ever cut off."""
    path = tmp_path / "out.tsv"
    path.write_text(HEADER[:7])
    with ResultsWriter(path, CERTIFY_COLUMNS) as writer:
        assert writer.done == set()
    assert path.read_text() == HEADER
    path.write_text(HEADER + format_row(row(0), CERTIFY_COLUMNS) + "1\t3\t3\t0.5\t1\t0:00")
    with ResultsWriter(path, CERTIFY_COLUMNS) as writer:
        assert writer.done == {0}
    assert path.read_text() == HEADER + format_row(row(0), CERTIFY_COLUMNS)


def test_a_missing_file_refused_for_its_settings_record_is_not_left_behind(tmp_path):
    path = tmp_path / "out.tsv"
    Path(settings_path(path)).write_text("my settings")
    with pytest.raises(ResultsError, match="not a settings record written by rs-plugin"):
        ResultsWriter(path, CERTIFY_COLUMNS, settings={"n": 100})
    assert not path.exists() and Path(settings_path(path)).read_text() == "my settings"


# A resumed run must have the settings of the rows already there.

SETTINGS = {"sigma": 0.25, "n": 2000, "alpha": 0.001, "target_radius": [0.25, 0.5]}


def resumable(path: Path, settings: dict, rows: tuple[int, ...] = (0, 1)) -> None:
    with ResultsWriter(path, CERTIFY_COLUMNS, settings=settings) as writer:
        for idx in rows:
            writer.write(row(idx))


def test_settings_are_recorded_next_to_the_file_and_a_resume_with_the_same_ones_continues(tmp_path):
    path = tmp_path / "out.tsv"
    resumable(path, SETTINGS)
    record = json.loads(Path(settings_path(path)).read_text())
    assert record["settings"] == SETTINGS and settings_path(path) == f"{path}.settings.json"
    with ResultsWriter(path, CERTIFY_COLUMNS, settings={**SETTINGS, "target_radius": (0.25, 0.5)}) as writer:
        assert writer.done == {0, 1}


def test_resuming_with_other_settings_is_refused_naming_the_difference(tmp_path):
    path = tmp_path / "out.tsv"
    resumable(path, SETTINGS)
    before = path.read_bytes(), Path(settings_path(path)).read_bytes()
    with pytest.raises(ResultsError) as info:
        ResultsWriter(path, CERTIFY_COLUMNS, settings={**SETTINGS, "n": 100, "alpha": 0.3})
    message = str(info.value)
    assert message.startswith(f"{path}: its 2 rows were made with other settings") and "\n" not in message
    assert "n 2000 there, 100 here; alpha 0.001 there, 0.3 here" in message
    assert (path.read_bytes(), Path(settings_path(path)).read_bytes()) == before


def test_a_setting_added_later_counts_as_none_where_it_was_not_recorded(tmp_path):
    path = tmp_path / "out.tsv"
    resumable(path, SETTINGS)
    with ResultsWriter(path, CERTIFY_COLUMNS, settings={**SETTINGS, "radius_tolerance": None}) as writer:
        assert writer.done == {0, 1}
    with pytest.raises(ResultsError, match=re.escape("radius_tolerance null there, 0.01 here")):
        ResultsWriter(path, CERTIFY_COLUMNS, settings={**SETTINGS, "radius_tolerance": 0.01})


def test_rows_without_a_settings_record_are_not_resumed(tmp_path):
    path = tmp_path / "sigma_0.25"
    content = (COHEN / "cifar10/resnet110/noise_0.25/test/sigma_0.25").read_bytes()  # the paper's own log
    path.write_bytes(content)
    with pytest.raises(ResultsError, match="its 500 rows have no settings record"):
        ResultsWriter(path, CERTIFY_COLUMNS, settings=SETTINGS)
    assert path.read_bytes() == content and not Path(settings_path(path)).exists()


def test_without_rows_a_stale_settings_record_is_replaced(tmp_path):
    path = tmp_path / "out.tsv"
    resumable(path, SETTINGS, rows=())
    resumable(path, {**SETTINGS, "n": 100}, rows=(3,))
    assert json.loads(Path(settings_path(path)).read_text())["settings"]["n"] == 100


def test_task_settings_record_every_field_that_changes_the_rows_and_the_checkpoints_content(tmp_path):
    pytest.importorskip("torch")
    from rs_plugin.runs import DatasetTask

    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")

    def settings_of(path: Path) -> dict:
        options = {"checkpoint": [str(path)]}
        return DatasetTask("digits", 0.25, n=100, model_options=options, batch_size=1000, data_dir="d").settings()

    settings = settings_of(checkpoint)
    assert settings["checkpoint"] == str(checkpoint)
    assert settings["checkpoint_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert settings["sigma"] == 0.25 and settings["n"] == 100 and settings["precision"] == "fp32"
    assert not {"batch_size", "device", "data_dir", "report", "model_options"} & set(settings)  # how, not what
    moved = tmp_path / "moved.pt"
    checkpoint.rename(moved)
    assert settings_difference(settings, settings_of(moved)) == ""
    moved.write_bytes(b"other weights")
    assert settings_difference(settings, settings_of(moved)).startswith(
        f'checkpoint "{checkpoint}" there, "{moved}" here; checkpoint_sha256 '
    )


# analyze trusts no row: impossible ones are refused with file:line.


@pytest.mark.parametrize(
    ("line", "where", "what"),
    [
        ("0\t3\t3\t0.5\t1\t1.0", ":3:", "idx 0 is already on line 2"),
        ("1\t3\t5\t0.5\t1\t1.0", ":3:", "correct is 1 but predict 5 and label 3 differ"),
        ("1\t3\t3\t0.5\t0\t1.0", ":3:", "correct is 0 but predict 3 and label 3 agree"),
        ("1\t3\t3\tinf\t1\t1.0", ":3:", "radius must be finite and >= 0, got inf"),
        ("1\t3\t3\t-0.1\t1\t1.0", ":3:", "radius must be finite and >= 0, got -0.1"),
        ("1\t3\t3\tnan\t1\t1.0", ":3:", "radius must be finite and >= 0, got nan"),
        ("1\t3\t-1\t0.5\t0\t1.0", ":3:", "an abstention"),
        ("1\t-3\t-1\t0.0\t0\t1.0", ":3:", "idx and label must be >= 0"),
        ("1\t3\t3\t0.5\t1\tnan", ":3:", "time must be finite and >= 0 seconds, got nan"),
        ("1\t3\t3\t0.5\t1\t-2.5", ":3:", "time must be finite and >= 0 seconds, got -2.5"),
    ],
)
def test_impossible_rows_are_reported_with_file_and_line(tmp_path, line, where, what):
    path = tmp_path / "bad.tsv"
    path.write_text(HEADER + "0\t3\t3\t0.5\t1\t1.0\n" + line + "\n")
    with pytest.raises(ResultsError, match=re.escape(what)) as info:
        read_results(path)
    assert str(info.value).startswith(f"{path}{where}")


def test_line_numbers_count_newlines_only(tmp_path):
    """A form feed or a line separator inside a row (Python reads them as whitespace around a number) does not start
    a new line, as str.splitlines would: a bad row is named by its line as an editor numbers it; Windows line ends
    are read."""
    path = tmp_path / "odd.tsv"
    path.write_text(HEADER.replace("\n", "\r\n") + "0\t3\t3\t0.5\t1\t1.0\x0c\r\n" + "1\t3\t3\t0.5\t1\t1.0\u2028\n"
                    + "2\tx\t3\t0.5\t1\t1.0\n", newline="")
    with pytest.raises(ResultsError, match=re.escape(f"{path}:4: column 'label'")):
        read_results(path)
    path.write_text(HEADER.replace("\n", "\r\n") + "0\t3\t3\t0.5\t1\t1.0\x0c\r\n", newline="")
    assert read_results(path)["idx"].tolist() == [0]


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes(HEADER.encode() + "0\t3\t3\t0.5\t1\t1.0 café\n".encode("latin-1"))
    with pytest.raises(ResultsError, match=r"latin1.tsv:2: not UTF-8 text") as info:
        read_results(path)
    assert str(info.value).startswith(str(path))


# Records (JSON Lines) resume like results files.


def test_records_are_resumed_and_a_half_written_record_cut_off(tmp_path):
    path = tmp_path / "rows.jsonl"
    with RecordsWriter(path, {"n": 100}) as writer:
        writer.write({"index": 4, "radius": 0.5})
        writer.write({"index": 1, "attacks": {"1.5": [1, 2]}})
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"index": 7, "rad')
    with RecordsWriter(path, {"n": 100}) as writer:
        assert writer.done == {1, 4}
        assert writer.records[1] == {"index": 1, "attacks": {"1.5": [1, 2]}}
        assert path.read_bytes() == complete
    with pytest.raises(ResultsError, match=r"its 2 rows were made with other settings \(n 100 there, 5 here\)"):
        RecordsWriter(path, {"n": 5})
    assert path.read_bytes() == complete


@pytest.mark.parametrize("content", [b"my notes", b'{"index": 1}\n', b"\x00\x01", HEADER.encode()])
def test_a_file_that_is_not_a_records_file_is_refused_untouched(tmp_path, content):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(ResultsError, match="not a records file written by rs-plugin"):
        RecordsWriter(path, {"n": 100})
    assert path.read_bytes() == content


def test_a_records_file_without_records_takes_the_new_settings(tmp_path):
    path = tmp_path / "rows.jsonl"
    RecordsWriter(path, {"n": 100}).close()
    with RecordsWriter(path, {"n": 5}) as writer:
        writer.write({"index": 0})
    assert [json.loads(line) for line in path.read_text().splitlines()][1:] == [{"index": 0}]
    assert json.loads(path.read_text().splitlines()[0])["settings"] == {"n": 5}
