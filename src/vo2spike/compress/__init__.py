"""Compression of trained models for a microcontroller: BatchNorm folding, integer-only int8
quantisation, a NumPy reference integer engine and a C export.

Importing this package imports nothing heavy: ``vo2spike.compress.int_engine`` must stay
torch-free, and importing it imports this file first.
"""
