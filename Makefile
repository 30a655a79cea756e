# make lab   open the course in JupyterLab (creates .venv on first use)
# make test  run every test: package, contract, fuzz, and every notebook under nbval
# make test-real  the same course against a real vLLM (CPU), installed under ~/.cache/inferlab
# make test-llamacpp  ... and against a real llama.cpp server (opt-in: its build takes 15-40 min)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: lab test test-real test-llamacpp check check-lab labs clean

$(BIN)/inferlab: pyproject.toml etc/jupyterlab_overrides.json
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[notebooks,dev]'
	# offline rooms: JupyterLab must not ask to fetch news or check for updates
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp etc/jupyterlab_overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

# Containers often run as root, which JupyterLab refuses unless told it is deliberate.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(BIN)/inferlab
	$(BIN)/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=$(CURDIR) \
		--LabApp.default_url=/lab/tree/notebooks/00_setup.ipynb $(LAB_OPTIONS)

test: $(BIN)/inferlab
	$(BIN)/python -m pytest

# A real vLLM (CPU build, its own venv under ~/.cache/inferlab, a tiny random model made
# offline) on loopback: the proxy's exactness, doctor, bench and every notebook against it.
test-real: $(BIN)/inferlab
	bash scripts/real_vllm/test.sh

# llama.cpp's llama-server, built from the source inside the llama-cpp-python sdist (cached
# under ~/.cache/inferlab), over a tiny random-weight GGUF with llama's real vocabulary.
test-llamacpp: $(BIN)/inferlab
	bash scripts/real_llamacpp/test.sh

# Grade your own labs/ (make test grades the worked solutions); LESSON=07 grades one lesson.
check-lab: $(BIN)/inferlab
	INFERLAB_CHECK=labs $(BIN)/python -m pytest tests/lab -q --no-header \
		$(if $(LESSON),--lesson $(LESSON))

# Regenerate labs/ after editing solutions/.
labs: $(BIN)/inferlab
	$(BIN)/python scripts/make_labs.py

check: $(BIN)/inferlab
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV)
