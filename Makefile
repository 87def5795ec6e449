# The README's two commands. Both set everything up themselves and are safe to re-run.
.PHONY: demo test

demo:  ## set up, then serve the dashboard on the bundled sample data with Voila
	@bash scripts/setup.sh app
	@.venv/bin/python scripts/serve_app.py --no-token

test:  ## set up, then run the whole test suite
	@bash scripts/setup.sh test
	@.venv/bin/python -m pytest
