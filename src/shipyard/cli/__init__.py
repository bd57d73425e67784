"""The command line: parse, call the Python API, render. Nothing here decides anything."""
