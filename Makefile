# The two commands a fresh machine needs: `make demo` and `make test`.
# Both create .venv, install the package with its dev extra, PyTorch (the test oracle, when this
# machine can install it) and Graphviz's `dot` (apt-get when root, otherwise a clear message);
# `make test` also installs Chromium for the browser tests the same way.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench notebook dot browser venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@$(PY) -m pip install -q torch==2.13.0 \
	  || echo "note: torch==2.13.0 could not be installed; the PyTorch oracle tests will skip"
	touch $(STAMP)

venv: $(STAMP)

dot:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Graphviz (dot) with apt-get"; \
	    (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || exit 1; \
	  else \
	    echo "Graphviz's 'dot' is missing: install it (sudo apt-get install graphviz," \
	         "brew install graphviz, or conda install -c conda-forge graphviz) and run again"; \
	    exit 1; \
	  fi; }

# Debian's Chromium for the browser tests (tests/test_browser.py); without it they skip and say why.
browser:
	@[ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium (for the browser tests) with apt-get"; \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: chromium could not be installed; the browser tests will skip"; \
	  else \
	    echo "note: no chromium (sudo apt-get install chromium); the browser tests will skip"; \
	  fi; }

demo: $(STAMP) dot
	$(PY) -m tinygrad_scalar demo

# ruff first (a second, it fails early), then every test and, when committed, every notebook.
test: $(STAMP) dot browser lint
	$(PY) -m pytest -q tests $(if $(wildcard notebooks/*.ipynb),--nbmake notebooks,)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench.py

notebook: $(STAMP) dot
	$(PY) -m pip install -q jupyterlab || $(PY) -m pip install -q notebook
	$(PY) -m jupyter lab notebooks || $(PY) -m jupyter notebook notebooks

clean:
	rm -rf $(VENV) build .pytest_cache
