"""Sphinx configuration of the cloudstore documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "cloudstore"
author = "the cloudstore authors"
copyright = "2026, the cloudstore authors"
release = "0.1.0"

extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "alabaster"
exclude_patterns = ["_build"]
