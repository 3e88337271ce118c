"""Reading an administrator's CSV file as UTF-8, with a clear error and the fix to apply when it is not.

Spreadsheets save CSV in several encodings. UTF-8, with or without Excel's byte-order mark, is read. A UTF-16
file (Excel's "Unicode text", which starts with a byte-order mark ``FF FE`` or ``FE FF``) and a Latin-1 /
Windows-1252 file (Excel's plain "CSV (Comma delimited)" on Windows, where ``é`` is the byte ``E9``) are refused
with a message that names the encoding found, the line of the first bad byte and how to convert the file; no
guess is silently applied, since a wrong guess would corrupt staff references.
"""

from __future__ import annotations

import codecs
from pathlib import Path

__all__ = ["CsvEncodingError", "read_csv_text"]

_SAVE_AS = "in Excel use File > Save As > 'CSV UTF-8 (Comma delimited) (*.csv)'"


class CsvEncodingError(ValueError):
    """The file is not UTF-8; the message says what it is and how to convert it."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(reason)


def _utf16_error(data: bytes) -> CsvEncodingError:
    tabbed = b"\t\x00" in data[:4096] or b"\x00\t" in data[:4096]
    kind = "UTF-16 with tabs (Excel's 'Unicode text')" if tabbed else "UTF-16"
    return CsvEncodingError(1, f"the file is {kind}, not UTF-8 CSV; {_SAVE_AS}, or convert it with "
                               "`iconv -f UTF-16 -t UTF-8 FILE > FILE-utf8.csv`"
                            + (" and replace the tabs by commas" if tabbed else ""))


def read_csv_text(path: Path) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark is dropped).

    Raises
    ------
    CsvEncodingError
        UTF-16 (either byte order), a NUL byte, or bytes that are not UTF-8 (reported with their line and, when
        they decode as Windows-1252, the character they probably are).
    """
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data[:4096]:
        raise _utf16_error(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start:exc.start + 1]
        try:
            guess = f" ({byte.decode('cp1252')!r} in Windows-1252)"
        except UnicodeDecodeError:
            guess = ""
        raise CsvEncodingError(line, f"byte 0x{byte.hex().upper()}{guess} is not UTF-8: the file is probably "
                                     f"Latin-1 / Windows-1252; {_SAVE_AS}, or convert it with "
                                     "`iconv -f WINDOWS-1252 -t UTF-8 FILE > FILE-utf8.csv`") from exc
