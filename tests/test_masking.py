import logging

from shoplift.logs import MaskCredentialsFilter
from shoplift.masking import mask_text, mask_url, unmask_url


def test_it_masks_the_password_and_keeps_the_rest():
    assert mask_url("rtsp://admin:s3cret@10.0.0.5:554/ch1?x=1") == "rtsp://admin:****@10.0.0.5:554/ch1?x=1"
    assert mask_url("rtsp://10.0.0.5/ch1") == "rtsp://10.0.0.5/ch1"
    assert mask_url("rtsp://admin:p@ss:w0rd@[fe80::1]/a") == "rtsp://admin:****@[fe80::1]/a"


def test_it_masks_urls_inside_free_text():
    text = "Connection refused: rtsp://admin:s3cret@10.0.0.5/ch1 and rtsps://u:p%40x@dvr:322/a"
    assert mask_text(text) == "Connection refused: rtsp://admin:****@10.0.0.5/ch1 and rtsps://u:****@dvr:322/a"


def test_it_puts_back_the_stored_password_when_the_mask_is_submitted():
    stored = "rtsp://admin:s3cret@10.0.0.5/ch1"
    assert unmask_url("rtsp://admin:****@10.0.0.5/ch2", stored) == "rtsp://admin:s3cret@10.0.0.5/ch2"
    assert unmask_url("rtsp://admin:new@10.0.0.5/ch1", stored) == "rtsp://admin:new@10.0.0.5/ch1"


def test_it_masks_passwords_in_log_records_and_tracebacks():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "open %s failed", ("rtsp://a:hunter2@h/1",), None)
    try:
        raise OSError("rtsp://a:hunter2@h/1: refused")
    except OSError:
        import sys

        record.exc_info = sys.exc_info()
    MaskCredentialsFilter().filter(record)
    line = logging.Formatter().format(record)
    assert "hunter2" not in line
    assert "rtsp://a:****@h/1" in line
