"""Search: dense + BM25 candidates fused into ranked hits, and the refusal."""
