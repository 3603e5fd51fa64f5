"""Results files: the paper's format written row by row, resumed after a crash, read in both time formats."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest

from rs_plugin.results import (
    CERTIFY_COLUMNS,
    PREDICT_COLUMNS,
    ResultsError,
    ResultsWriter,
    format_row,
    format_time,
    parse_time,
    read_results,
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
