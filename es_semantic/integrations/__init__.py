"""Retrievers for LangChain (``integrations.langchain``, the ``langchain`` extra) and
LlamaIndex (``integrations.llama_index``, the ``llama-index`` extra): thin shells over
:class:`~es_semantic.search.searcher.Searcher` / ``AsyncSearcher``. ``filters.py`` (pure)
translates the frameworks' filter trees; ``hits.py`` (pure) shapes a hit for them."""
