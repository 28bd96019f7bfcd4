"""Provenance: generation-time image watermarks (GaussMarker, Tree-Ring, Gaussian Shading),
video watermark benchmarks and model fingerprints. Import the submodules you need."""
