//! A stand-in OpenAI server for tests, fixtures and benchmarks (see openai-standin).
