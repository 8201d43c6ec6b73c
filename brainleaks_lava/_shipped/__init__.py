"""Build-time home of the repository's netx_models/ and experiments/ (see pyproject.toml); use
``brainleaks_lava.resources`` to find them."""
