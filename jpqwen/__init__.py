"""jpqwen: teach Qwen2.5-0.5B Japanese with NeMo 2.0.

The library behind the Make workflow. Importing it has no side effects: no
environment is read, nothing is downloaded, no heavy framework is imported.
Each stage's code lives in its own module and imports NeMo / torch lazily.
"""

__version__ = "0.1.0"
