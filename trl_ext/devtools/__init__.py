"""Tools for the project's own documentation and demonstrations (not needed to train)."""
