# The two commands of the README's quick start. Each sets up .venv on first use.
.PHONY: demo test test-vllm lint typecheck browser bench clean

EXTRAS := vision,eval,text,server,dev

demo:
	@scripts/bootstrap.sh $(EXTRAS)
	.venv/bin/aimod demo

test: lint typecheck browser
	.venv/bin/python -m pytest -n 2
	@$(MAKE) --no-print-directory test-vllm

# vLLM needs its own environment (.venv-vllm: transformers < 5.20, fastapi < 0.137); docs/vllm.md
test-vllm:
	@scripts/bootstrap-vllm.sh
	.venv-vllm/bin/python -m pytest -n 2 --dist loadfile -p no:cacheprovider src/aimod/vllm tests/vllm

lint:
	@scripts/bootstrap.sh $(EXTRAS)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

browser:
	@scripts/browser.sh

typecheck:
	@scripts/bootstrap.sh $(EXTRAS)
	.venv/bin/mypy

bench:
	@scripts/bootstrap.sh $(EXTRAS)
	.venv/bin/python benchmarks/bench_modulate.py
	.venv/bin/python benchmarks/bench_theory.py

clean:
	rm -rf .venv .venv-vllm .pytest_cache .mypy_cache .ruff_cache .hypothesis
