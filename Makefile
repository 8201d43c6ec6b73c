.PHONY: setup test test-fast demo wheel wheel-check clean

setup:
	@bash scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q -n auto

test-fast: setup
	.venv/bin/python -m pytest -q -n auto -m "not slow"

demo: setup
	.venv/bin/brainleaks demo

# dist/brainleaks_lava-<version>-py3-none-any.whl: the package with the shipped models, experiment configs, vendored
# MNIST subset, LICENSE and notices. Built with any Python 3.10 (scripts/python310.sh); setuptools' build/ is removed
# before (no file deleted from the tree is shipped from an earlier build) and after.
wheel:
	@bash -c 'set -euo pipefail; source scripts/python310.sh; PY="$$(find_python310)" || { no_python310 wheel; exit 2; }; \
	  rm -rf build; rm -f dist/brainleaks_lava-*.whl; \
	  "$$PY" -m pip wheel . --no-deps --quiet -w dist; rm -rf build; ls dist/brainleaks_lava-*.whl'

# the wheel installed into a fresh venv outside the checkout; its `brainleaks demo` must print the same report
# tables as the checkout's (issue 32's acceptance check; run by .ci/run)
wheel-check: setup
	@bash scripts/wheel_check.sh

clean:
	rm -rf .venv runs build dist
