.PHONY: demo test lint bench
demo:  ## set up and run the main job on the embedded stack
	bash scripts/demo.sh
test:  ## set up, lint, and run the tests
	bash scripts/test.sh
lint:  ## set up, then ruff check, ruff format --check and mypy (scripts/lint.sh)
	bash scripts/lint.sh
bench: ## orchestration benchmark (prints a table, writes bench/results/*.json)
	bash scripts/bootstrap.sh && .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python bench/bench_engine.py
