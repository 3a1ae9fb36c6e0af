"""``es-semantic mcp``: search tools for agents over the Model Context Protocol (the ``mcp``
extra). ``limits.py`` is pure (caps, argument checks, result shapes), ``tools.py`` the async
shell over :class:`~es_semantic.search.searcher.AsyncSearcher`, ``server.py`` the MCP server
and its tools, ``run.py`` the stdio and streamable-HTTP transports."""
