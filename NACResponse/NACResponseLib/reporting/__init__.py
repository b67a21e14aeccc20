"""Reports that read every domain of a study: the per-case page for the tumour board."""
