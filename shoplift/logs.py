"""Logging pieces shared by every process."""
from __future__ import annotations

import logging

from cameras.masking import mask_text


class MaskCredentialsFilter(logging.Filter):
    """Mask URL passwords in every record, whatever code produced it (PyAV errors quote URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted tracebacks quote exception strings; cache a masked copy.
            formatter = logging.Formatter()
            record.exc_text = mask_text(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True
