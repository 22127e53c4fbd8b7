"""Coverage-guided fuzz targets (atheris), run by `make fuzz` for a bounded time."""
