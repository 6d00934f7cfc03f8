"""Load generators and side-by-side comparisons with reference servers (see README.md)."""
