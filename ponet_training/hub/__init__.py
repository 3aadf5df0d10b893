"""Model cards and Hub uploads."""
