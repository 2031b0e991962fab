"""Answers from hits: the extractive composer and the written (LLM) answer."""
