"""Slicer layer helpers of NACResponse (see the README, "The Slicer module")."""
