"""The index: embedding, the column store and its segments, BM25, FAISS, building and watching."""
