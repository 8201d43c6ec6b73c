.PHONY: setup test test-fast demo clean

setup:
	@bash scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q -n auto

test-fast: setup
	.venv/bin/python -m pytest -q -n auto -m "not slow"

demo: setup
	.venv/bin/brainleaks demo

clean:
	rm -rf .venv runs
