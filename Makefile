.PHONY: setup test test-fast demo clean

setup:
	@bash scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

demo: setup
	.venv/bin/brainleaks demo

clean:
	rm -rf .venv runs
