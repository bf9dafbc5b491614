def pytest_addoption(parser):
    parser.addoption(
        "--update-golden", action="store_true", default=False,
        help="rewrite tests/golden/expected/*.ndjson from the current output (review the diff!)",
    )
