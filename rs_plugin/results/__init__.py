"""Results files: the paper's format (:mod:`.paper_format`), the run settings recorded beside them
(:mod:`.settings`) and the append-only writers that resume a killed run (:mod:`.writers`)."""

from .paper_format import (
    CERTIFY_COLUMNS,
    PREDICT_COLUMNS,
    SAMPLES_COLUMN,
    Results,
    ResultsError,
    format_row,
    format_time,
    parse_time,
    read_results,
)
from .settings import (
    SETTINGS_SUFFIX,
    file_sha256,
    plain_settings,
    refuse_other_settings,
    settings_difference,
    settings_path,
)
from .writers import RecordsWriter, ResultsWriter

__all__ = [
    "CERTIFY_COLUMNS",
    "PREDICT_COLUMNS",
    "SAMPLES_COLUMN",
    "SETTINGS_SUFFIX",
    "RecordsWriter",
    "Results",
    "ResultsError",
    "ResultsWriter",
    "file_sha256",
    "format_row",
    "format_time",
    "parse_time",
    "plain_settings",
    "read_results",
    "refuse_other_settings",
    "settings_difference",
    "settings_path",
]
