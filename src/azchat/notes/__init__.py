"""Reading notes: markdown and its syntax, note files, chunks, language."""
