"""OnePoseTrans pieces (Fan et al., arXiv 2409.09593; ../shared/design/seeds.md §E)."""
