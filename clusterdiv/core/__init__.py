"""The bottom layer: what every other package may import and which imports nothing above it.

Records that cross stages (`records`), error types with exit codes (`errors`), the model-answer
cache (`cache`), progress hooks (`progress`), the prompt files (`prompts`), file integrity checks
(`integrity`) and the asyncio bridge (`aio`). Nothing here loads a model or reads user data.
"""
