"""Makes the shared fixtures of tests/support available to every test module, without imports.

The fixtures stay where they are defined; plain helpers (factories, make_video, wait_until...) are
still imported by the modules that call them. A fixture only one module uses lives in that module.
"""
# rtsp comes before processes, which imports it: a plugin imported earlier escapes assertion rewriting.
pytest_plugins = [
    "tests.support.browser",  # browser
    "tests.support.clips",  # test_clip, clip_settings, fast_passwords, world
    "tests.support.rtsp",  # rtsp_test_video, rtsp_server, rtsp_servers
    "tests.support.processes",  # redis_server
]
