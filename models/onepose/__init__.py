"""OnePoseTrans pieces (Fan et al., arXiv 2409.09593; docs/methods.md §E)."""
