"""es-semantic as a LangChain retriever: a minimal chain (retrieval, then formatting) with
metadata filters written the way LangChain's structured queries write them.

    python langchain_retriever.py INDEX "QUERY" [--lang en] [--mode hybrid|knn|keyword]

Connection from the environment (ES_URL, ES_API_KEY, ...); model from ES_SEMANTIC_MODEL
(default: the packaged all-MiniLM-L6-v2). Needs: pip install 'es-semantic[langchain]'.
"""

from __future__ import annotations

import argparse
import os

from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_core.structured_query import Comparator, Comparison

from es_semantic import Encoder, ESConfig, Searcher
from es_semantic.elastic.client import make_client
from es_semantic.integrations.langchain import ESSemanticRetriever


def format_docs(docs: list[Document]) -> str:
    """What a prompt would receive: one line per hit, its id, its leg ranks and its passage."""
    return "\n".join(f"[{d.id}] {d.metadata['ranks']} {d.page_content[:120]}" for d in docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index")
    parser.add_argument("query")
    parser.add_argument("--lang", help="only documents whose metadata field lang is this")
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "knn", "keyword"])
    args = parser.parse_args()
    es = make_client(ESConfig.from_env())
    searcher = Searcher(es, args.index, Encoder(os.environ.get("ES_SEMANTIC_MODEL")))
    where = Comparison(comparator=Comparator.EQ, attribute="lang", value=args.lang)
    retriever = ESSemanticRetriever(searcher=searcher, mode=args.mode, k=3,
                                    filters=where if args.lang else None)  # fmt: skip
    chain = retriever | RunnableLambda(format_docs)
    print(chain.invoke(args.query))
    es.close()


if __name__ == "__main__":
    main()
