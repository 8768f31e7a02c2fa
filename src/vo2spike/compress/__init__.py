"""Model compression for the watch: pruning, int8 quantisation, integer engines, energy."""
