"""Know your corpus: near-duplicate pairs and groups, topic clusters, over an index."""
