"""Augmenting (RAG) and responsible AI: Lab 04 (coming) fills this stage."""
