"""Sampling math, kept apart from models and pipelines."""
