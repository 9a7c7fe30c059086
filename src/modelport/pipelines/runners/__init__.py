"""One module per family of tasks; each has `load(path, task, options) -> TaskRunner`."""
