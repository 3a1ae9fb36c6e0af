"""Where a demo or test server comes from, and the quickstart corpus (not the product)."""
