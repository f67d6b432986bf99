"""Sanity check of .cache/venv-agents (run by scripts/setup-python agents).

tests/agents.rs imports engram's generated agent modules here: they need the Agents SDK and
Engramia 0.7.0.dev0's OpenAI Agents integration.
"""

import importlib.metadata as md

from agents import Agent, AgentOutputSchema, CodeInterpreterTool, ModelSettings, function_tool  # noqa: F401
from engramia.sdk.openai_agents import EngramiaRunHooks, engramia_instructions  # noqa: F401

assert md.version("engramia") == "0.7.0.dev0", md.version("engramia")
assert md.version("openai-agents") == "0.24.0", md.version("openai-agents")
