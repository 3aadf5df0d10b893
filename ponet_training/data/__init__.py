"""Data readers, labels, segments, truncation, tokenizers, and the real data sets and encoder used offline."""
