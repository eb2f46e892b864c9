"""Analysis of finished (or partly finished) Ray Tune studies: load, rank, export."""
