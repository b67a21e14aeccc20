"""Slicer layer helpers of NACResponse (see docs/sections/9-slicer.md)."""
