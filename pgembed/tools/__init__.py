"""The tools around the product, outside its core import graph: benchmarks, datasets, the main job."""
